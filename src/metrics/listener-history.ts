/**
 * The status page's live figures, made by the main thread: the ring of
 * listener counts per mount over the last hour (one sample every
 * HISTORY_STEP_S), and LiveStatus (ipc/live-status.ts) from the snapshot,
 * the election's candidates and what each node reports per mount.
 *
 * The ring lives in this process only: a restarted radiod starts its plot
 * afresh. Every node samples the same cluster-wide figures, so any node's
 * page shows the same curve.
 */
import type { Snapshot } from '../ipc/snapshot.ts';
import { HISTORY_STEP_S, liveFromSnapshot, type LiveStatus } from '../ipc/live-status.ts';
import { icecastRole } from '../icecast/icecast-role.ts';

/** One hour of samples. */
export const HISTORY_SAMPLES = 3600 / HISTORY_STEP_S;

export class ListenerHistory {
  readonly #series = new Map<string, number[]>();
  readonly #size: number;

  constructor(size = HISTORY_SAMPLES) {
    this.#size = size;
  }

  /** Takes one sample of every mount's listeners; mounts no longer there are forgotten. */
  sample(mounts: readonly { path: string; listeners: number }[]): void {
    const seen = new Set<string>();
    for (const m of mounts) {
      seen.add(m.path);
      let s = this.#series.get(m.path);
      if (!s) this.#series.set(m.path, (s = []));
      s.push(m.listeners);
      if (s.length > this.#size) s.splice(0, s.length - this.#size);
    }
    for (const path of this.#series.keys()) if (!seen.has(path)) this.#series.delete(path);
  }

  /** The samples of `path`, oldest first. */
  series(path: string): readonly number[] {
    return this.#series.get(path) ?? [];
  }
}

/**
 * LiveStatus for the workers. `perNode(node, path)` is what `node` reports
 * serving of `path`; the plot's last point is the count now, so a page
 * shows a change at once, not at the next sample.
 */
export function buildLiveStatus(snap: Snapshot, candidates: readonly string[], perNode: (node: string, path: string) => number, history: ListenerHistory, at: number): LiveStatus {
  return liveFromSnapshot(snap, {
    role: (name) => (snap.master === null ? 'relay' : icecastRole(name, snap.master, candidates)),
    perNode,
    history: (path) => history.series(path),
    at,
  }, HISTORY_STEP_S);
}
