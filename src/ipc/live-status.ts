/**
 * What the status page shows beyond the snapshot, sent by the main thread
 * to the workers (LIVE_STATUS, as JSON) every few seconds when it changes:
 * each node's role as the election has it (master, standby, relay), each
 * mount's listeners per node, and the ring of listener counts over the last
 * hour that the main thread keeps. Like the snapshot, it never holds a
 * password.
 */
import type { Snapshot } from './snapshot.ts';

/** Seconds between two samples of the listener plot. */
export const HISTORY_STEP_S = 30;

export type LiveRole = 'master' | 'standby' | 'relay';
export type LiveHealth = 'serving' | 'icecast down' | 'not serving';

export interface LiveNode {
  name: string;
  role: LiveRole;
  health: LiveHealth;
  listeners: number;
  /** Measured outbound rate, kbit/s. */
  outKbps: number;
}

export interface LiveMount {
  path: string;
  onAir: boolean;
  title: string;
  name: string;
  contentType: string;
  bitrate: number;
  listeners: number;
  /** Listeners per node, nodes with none left out. */
  perNode: [node: string, listeners: number][];
  /** Listeners over the whole cluster, one sample every `stepSeconds`, oldest first; the last is now. */
  history: number[];
}

export interface LiveStatus {
  /** Unix ms when it was made. */
  at: number;
  master: string | null;
  etcd: boolean;
  stepSeconds: number;
  nodes: LiveNode[];
  mounts: LiveMount[];
}

export function nodeHealth(n: { alive: boolean; icecastReady: boolean }): LiveHealth {
  if (!n.alive) return 'not serving';
  return n.icecastReady ? 'serving' : 'icecast down';
}

/** What the main thread knows beyond the snapshot (live-feed.ts); a worker without it goes by the snapshot alone. */
export interface LiveExtras {
  /** The election's role of a node; without it, master or relay. */
  role?: (node: string, master: boolean) => LiveRole;
  /** Listeners `node` serves of `path`; without it, none are listed per node. */
  perNode?: (node: string, path: string) => number;
  /** Earlier samples of `path`'s listeners, oldest first; without it, only now. */
  history?: (path: string) => readonly number[];
  at?: number;
}

/** LiveStatus from the snapshot and whatever `extras` the caller has (a worker that has had none: no standby, no history). */
export function liveFromSnapshot(snap: Snapshot, extras: LiveExtras = {}, stepSeconds = HISTORY_STEP_S): LiveStatus {
  const { role, perNode, history } = extras;
  return {
    at: extras.at ?? Date.now(),
    master: snap.master,
    etcd: snap.etcdConnected,
    stepSeconds,
    nodes: snap.nodes.map((n) => ({
      name: n.name, role: role ? role(n.name, n.master) : n.master ? 'master' : 'relay', health: nodeHealth(n), listeners: n.listeners, outKbps: n.bandwidthKbps,
    })),
    mounts: snap.mounts.map((m) => ({
      path: m.path, onAir: m.sourceConnected, title: m.info.title, name: m.info.name, contentType: m.info.contentType, bitrate: m.info.bitrate,
      listeners: m.listeners,
      perNode: perNode ? snap.nodes.map((n): [string, number] => [n.name, perNode(n.name, m.path)]).filter(([, c]) => c > 0) : [],
      history: [...(history?.(m.path) ?? []), m.listeners],
    })),
  };
}
