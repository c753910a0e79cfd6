/**
 * Counters by shared-row word, kept in the worker and added to the shared
 * row twice a second: a query costs an increment of a local array, not an
 * atomic operation on shared memory.
 */
import { ROW_HEAD, type WorkerStats } from '../ipc/worker-stats.ts';

export class LocalCounts {
  readonly #counts = new Float64Array(ROW_HEAD);
  readonly #stats: WorkerStats;
  readonly #timer: NodeJS.Timeout;
  /** Called first at each flush: other counters (the DNS addon's) adding theirs. */
  readonly #pull: (() => void) | undefined;

  constructor(stats: WorkerStats, everyMs = 500, pull?: () => void) {
    this.#stats = stats;
    this.#pull = pull;
    this.#timer = setInterval(() => this.flush(), everyMs);
    this.#timer.unref();
  }

  add(word: number): void {
    this.#counts[word]!++;
  }

  addMany(word: number, n: number): void {
    this.#counts[word]! += n;
  }

  flush(): void {
    this.#pull?.();
    const c = this.#counts;
    for (let word = 0; word < c.length; word++) {
      if (c[word] !== 0) {
        this.#stats.add(word, c[word]!);
        c[word] = 0;
      }
    }
  }

  /** Stops the timer after a last flush. */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
