/**
 * MP3, AAC and other frame streams arrive a frame at a time (about 400
 * bytes, 38 a second at 128 kbit/s); writing each to every listener costs
 * a system call per frame per listener. Held until COALESCE_BYTES or for
 * a while, they go out as a few writes a second, as Ogg pages do.
 *
 * How long is a trade between CPU and delay that depends on how many
 * listen (holdMs): a hub with a few listeners passes frames on as they
 * come, as Icecast does, since its writes cost little in all; a crowded
 * one holds them up to COALESCE_MS, where the writes saved are worth a
 * quarter of a second.
 */

/** Frames are released in pieces of at least this many bytes... */
export const COALESCE_BYTES = 4096;
/** ...or after at most this long (at 128 kbit/s: every 250 ms, 4 KiB). */
export const COALESCE_MS = 250;

/**
 * How long a hub with `listeners` holds frames: not at all below 64; 20 ms
 * up to 500 (a mount of 1,000 listeners has 500 a hub on two workers; its
 * listeners measured 25 ms later than Icecast's own at the median); then
 * longer with each listener, up to COALESCE_MS from 2,500 (a mount of
 * 5,000 on two workers), where the writes saved halve the CPU per listener.
 */
export function holdMs(listeners: number): number {
  if (listeners < 64) return 0;
  if (listeners <= 500) return 20;
  return Math.min(COALESCE_MS, Math.round(20 + ((listeners - 500) * (COALESCE_MS - 20)) / 2000));
}

export class Coalescer {
  #held: Buffer[] = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  readonly #out: (buf: Buffer) => void;
  readonly #hold: () => number;

  /** `hold` says how long to hold frames now, in ms (holdMs of the listeners). */
  constructor(out: (buf: Buffer) => void, hold: () => number = () => COALESCE_MS) {
    this.#out = out;
    this.#hold = hold;
  }

  /** Holds `buf`; `now` releases it with what is held at once (a listener waits for a start). */
  push(buf: Buffer, now: boolean): void {
    this.#held.push(buf);
    this.#bytes += buf.length;
    if (this.#bytes >= COALESCE_BYTES || now) return this.release();
    if (this.#timer) return;
    const ms = this.#hold();
    if (ms <= 0) this.release();
    else this.#timer = setTimeout(() => this.release(), ms);
  }

  /** Sends what is held as one buffer. */
  release(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#bytes === 0 || this.#stopped) return;
    const buf = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held, this.#bytes);
    this.#held = [];
    this.#bytes = 0;
    this.#out(buf);
  }

  /** Drops what is held; nothing more is sent. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#held = [];
    this.#bytes = 0;
  }
}
