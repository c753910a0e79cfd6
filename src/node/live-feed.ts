/**
 * The status page's figures for the workers: every HISTORY_STEP_S a sample
 * of each mount's listeners goes into the hour-long ring, and every tick
 * the figures are built and handed on when they differ from the last ones
 * sent (their time left out of the comparison: it changes every second).
 */
import { ListenerHistory, buildLiveStatus } from '../metrics/listener-history.ts';
import { HISTORY_STEP_S } from '../ipc/live-status.ts';
import type { Snapshot } from '../ipc/snapshot.ts';

export class LiveFeed {
  readonly #history = new ListenerHistory();
  #sampledAt = -Infinity;
  #sent = '';

  /** The next figures are sent whatever they are (a worker that restarted has none). */
  resend(): void {
    this.#sent = '';
  }

  /** The figures as JSON when they changed, else null. */
  tick(snap: Snapshot, candidates: readonly string[], perNode: (node: string, path: string) => number, now: number): string | null {
    if (now - this.#sampledAt >= HISTORY_STEP_S * 1000) {
      this.#sampledAt = now;
      this.#history.sample(snap.mounts);
    }
    const live = buildLiveStatus(snap, candidates, perNode, this.#history, 0);
    const json = JSON.stringify(live);
    if (json === this.#sent) return null;
    this.#sent = json;
    return JSON.stringify({ ...live, at: now });
  }
}
