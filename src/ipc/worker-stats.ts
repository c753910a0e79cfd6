/**
 * Counters the workers keep for the main thread, in one SharedArrayBuffer:
 * a row per worker, written only by that worker, read by the main thread
 * once a second for the node status and metrics. Listeners are counted per
 * mount slot (the snapshot's stable slots).
 *
 *   row w: [ S.* words (ROW_HEAD) | listeners of mount slot 0 .. maxMounts-1 ]
 */

export const S = {
  /** Kilobytes written to listeners; wraps at 2^31, readers take differences. */
  KBYTES_SENT: 0,
  LISTENERS: 1,
  REDIRECTS: 2,
  UPSTREAM_RECONNECTS: 3,
  /** Gap of the last upstream reconnect, ms. */
  LAST_GAP_MS: 4,
  SOURCES: 5,
  BAD_REQUESTS: 6,
  DNS_QUERIES: 7,
  DNS_NXDOMAIN: 8,
  DNS_REFUSED: 9,
  DNS_FORMERR: 10,
  DNS_NOTIMP: 11,
  DNS_TRUNCATED: 12,
  DNS_RRL_DROPPED: 13,
  DNS_RRL_SLIPPED: 14,
  DNS_TCP: 15,
  /**
   * Moved by the worker's event loop several times a second; the
   * supervisor's watchdog replaces a worker whose heartbeat stops.
   */
  HEARTBEAT: 16,
  /** Source logins and title updates refused at the edge for a wrong user name or password. */
  SOURCE_AUTH_FAILURES: 17,
  /** Source logins and title updates refused because their address is locked out (source-guard.ts). */
  SOURCE_LOCKED_OUT: 18,
  /** Sources carried on to a new upstream after theirs went away (source-carry.ts). */
  SOURCE_RESUMES: 19,
  /** DNS answers made and sent by the batched-UDP addon without JavaScript (native/udp-batch). */
  DNS_NATIVE: 20,
  /** Listeners served by native code (native/fan-send), a part of LISTENERS. */
  NATIVE_LISTENERS: 21,
  /** Sources whose bytes native code carries to the master now (native/source-relay). */
  NATIVE_SOURCES: 22,
} as const;
/** Words before the per-mount listener counts; spare words left for new counters. */
export const ROW_HEAD = 24;

export function statsBuffer(workers: number, maxMounts: number): SharedArrayBuffer {
  return new SharedArrayBuffer(workers * (ROW_HEAD + maxMounts) * 4);
}

export class WorkerStats {
  readonly #w: Int32Array;
  readonly #base: number;
  readonly maxMounts: number;

  constructor(sab: SharedArrayBuffer, worker: number, maxMounts: number) {
    this.#w = new Int32Array(sab);
    this.maxMounts = maxMounts;
    this.#base = worker * (ROW_HEAD + maxMounts);
  }

  add(word: number, n: number): void {
    Atomics.add(this.#w, this.#base + word, n);
  }

  /** Where `word` lives, for native code that adds to it as add() does (native/known-answers). */
  slot(word: number): { words: Int32Array; index: number } {
    return { words: this.#w, index: this.#base + word };
  }

  set(word: number, n: number): void {
    Atomics.store(this.#w, this.#base + word, n);
  }

  setMountListeners(slot: number, n: number): void {
    if (slot >= 0 && slot < this.maxMounts) Atomics.store(this.#w, this.#base + ROW_HEAD + slot, n);
  }

  clearMounts(): void {
    for (let i = 0; i < this.maxMounts; i++) Atomics.store(this.#w, this.#base + ROW_HEAD + i, 0);
  }
}

/** One worker's value of a word. */
export function workerStat(sab: SharedArrayBuffer, worker: number, maxMounts: number, word: number): number {
  return Atomics.load(new Int32Array(sab), worker * (ROW_HEAD + maxMounts) + word);
}

/** Sums a word (or a mount slot's listeners) over all worker rows. */
export function sumStats(sab: SharedArrayBuffer, workers: number, maxMounts: number, word: number): number {
  const w = new Int32Array(sab);
  let total = 0;
  for (let i = 0; i < workers; i++) total += Atomics.load(w, i * (ROW_HEAD + maxMounts) + word);
  return total;
}

export function sumMountListeners(sab: SharedArrayBuffer, workers: number, maxMounts: number, slot: number): number {
  return sumStats(sab, workers, maxMounts, ROW_HEAD + slot);
}
