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

/**
 * The same from the snapshot alone, for a worker that has not had one yet:
 * no standby, no listeners per node, no history.
 */
export function liveFromSnapshot(snap: Snapshot, stepSeconds = HISTORY_STEP_S): LiveStatus {
  return {
    at: Date.now(),
    master: snap.master,
    etcd: snap.etcdConnected,
    stepSeconds,
    nodes: snap.nodes.map((n) => ({ name: n.name, role: n.master ? 'master' : 'relay', health: nodeHealth(n), listeners: n.listeners, outKbps: n.bandwidthKbps })),
    mounts: snap.mounts.map((m) => ({
      path: m.path, onAir: m.sourceConnected, title: m.info.title, name: m.info.name, contentType: m.info.contentType, bitrate: m.info.bitrate,
      listeners: m.listeners, perNode: [], history: [m.listeners],
    })),
  };
}
