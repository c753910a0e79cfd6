/**
 * Which master this node acts on, and what its Icecast should be: pure
 * functions of the cluster model and of whether this node is cut off.
 *
 * A node out of service cannot know the election's outcome; if it was the
 * master, the others elect the next candidate once its lease expires, so it
 * steps down to that one rather than keep sources the rest of the cluster
 * no longer relays. Out of service it is nobody's standby either.
 */
import { nodeIcecast } from '../core/host-port.ts';
import { allowedAddresses } from '../icecast/allow-list.ts';
import type { IcecastDesired } from '../icecast/icecast-manager.ts';
import { icecastRole } from '../icecast/icecast-role.ts';
import type { MountStatus, NodeInfo } from '../state/cluster-state.ts';
import type { MountRecord } from '../state/mount-record.ts';

/** The master as `self` should act on it: the elected one, or while cut off the next candidate other than itself. */
export function actingMaster(self: string, elected: string | null, candidates: readonly string[], outOfService: boolean): string | null {
  if (!outOfService) return elected;
  return candidates.find((n) => n !== self) ?? null;
}

export interface IcecastInputs {
  self: string;
  /** actingMaster()'s answer. */
  master: string | null;
  /** The master election's candidates, oldest first. */
  candidates: readonly string[];
  outOfService: boolean;
  nodes: ReadonlyMap<string, NodeInfo>;
  mounts: Iterable<MountRecord>;
  relayRetry: ReadonlyMap<string, number>;
  /** ICECAST_ALLOW: null lets anyone in. */
  icecastAllow: readonly string[] | null;
  /** This node's own addresses (PUBLIC_IP and BIND_ADDR). */
  ownAddresses: readonly string[];
}

/**
 * What the local Icecast should be: role, mounts, where the master is, who
 * may connect. Null until a master is known: the role is not known either,
 * and starting Icecast in one role to restart it in the other a moment
 * later helps nobody.
 */
export function icecastDesired(i: IcecastInputs): IcecastDesired | null {
  if (i.master === null) return null;
  const master = i.nodes.get(i.master);
  return {
    role: icecastRole(i.self, i.master, i.outOfService ? [] : i.candidates),
    mounts: [...i.mounts].sort((a, b) => a.path.localeCompare(b.path)),
    master: master ? nodeIcecast(master) : null,
    relayRetry: i.relayRetry,
    // Only the cluster's nodes (and ICECAST_ALLOW) reach this node's Icecast; listeners come through the door.
    allow: i.icecastAllow === null ? null : allowedAddresses(i.nodes.values(), i.ownAddresses, i.icecastAllow),
  };
}

/** At most one relay restart per mount this often. */
export const RELAY_RETRY_MS = 3000;

/**
 * A relay that failed (no source yet, master restarting) is retried by
 * Icecast only after about 10 s. When the master reports a mount live that
 * this node's Icecast still lacks, the relay is asked for again at once
 * (a new count for the mount makes the configuration differ), at most every
 * RELAY_RETRY_MS per mount.
 */
export class RelayRetry {
  /** Restarts asked per mount: part of the Icecast configuration. */
  readonly counts = new Map<string, number>();
  readonly #at = new Map<string, number>();

  /** `live`: the master's mounts; `has(path)`: this node's Icecast has it. Returns the mounts asked for again. */
  check(live: Readonly<Record<string, MountStatus>>, has: (path: string) => boolean, now: number): string[] {
    const asked: string[] = [];
    for (const [path, m] of Object.entries(live)) {
      if (!m.ready || has(path)) continue;
      if (now - (this.#at.get(path) ?? -Infinity) < RELAY_RETRY_MS) continue;
      this.#at.set(path, now);
      this.counts.set(path, (this.counts.get(path) ?? 0) + 1);
      asked.push(path);
    }
    return asked;
  }
}
