/**
 * MP3, AAC and other frame streams arrive a frame at a time (about 400
 * bytes, 38 a second at 128 kbit/s); writing each to every listener costs
 * a system call per frame per listener. Held, they go out as fewer writes.
 *
 * How many to hold is a trade between CPU and delay that depends on how
 * many listen (holdOf): a hub with a few listeners passes frames on as
 * they come, as Icecast does, since its writes cost little in all; a
 * crowded one holds them up to COALESCE_BYTES or COALESCE_MS, where the
 * writes saved are worth a quarter of a second.
 *
 * In between, frames are counted rather than timed: a hold of three pieces
 * writes a third as often and delays a piece by one piece's interval on
 * average (the first waits for two more, the last not at all). A hold of
 * 20 ms, shorter than the 26 ms between MP3 frames, delayed every frame
 * by 20 ms and saved no write at all.
 */

/** Frames are released in pieces of at least this many bytes... */
export const COALESCE_BYTES = 4096;
/** ...or after at most this long (at 128 kbit/s: every 250 ms, 4 KiB). */
export const COALESCE_MS = 250;

/** How a hub holds frames: released once `pieces` are held, or `ms` after the first. */
export interface Hold {
  readonly pieces: number;
  readonly ms: number;
}

const NO_HOLD: Hold = { pieces: 1, ms: 0 };
/** A mount of 1,000 listeners has 500 a hub on two workers. */
const FEW: Hold = { pieces: 3, ms: 80 };
const CROWD_FROM = 500;
const CROWD_FULL = 2500;

/**
 * How a hub with `listeners` holds frames: not at all below 64; up to 500,
 * three pieces (at most 80 ms, for a source that sends seldom); then
 * longer with each listener, up to COALESCE_MS (or COALESCE_BYTES) from
 * 2,500 (a mount of 5,000 on two workers).
 */
export function holdOf(listeners: number): Hold {
  if (listeners < 64) return NO_HOLD;
  if (listeners <= CROWD_FROM) return FEW;
  const ms = Math.min(COALESCE_MS, Math.round(FEW.ms + ((listeners - CROWD_FROM) * (COALESCE_MS - FEW.ms)) / (CROWD_FULL - CROWD_FROM)));
  return { pieces: Infinity, ms };
}

export class Coalescer {
  #held: Buffer[] = [];
  #bytes = 0;
  /** Pieces to hold before releasing, set when the first is held. */
  #pieces = 1;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  readonly #out: (buf: Buffer) => void;
  readonly #hold: () => Hold;

  /** `hold` says how to hold frames now (holdOf the listeners); by default up to COALESCE_BYTES or COALESCE_MS. */
  constructor(out: (buf: Buffer) => void, hold: () => Hold = () => ({ pieces: Infinity, ms: COALESCE_MS })) {
    this.#out = out;
    this.#hold = hold;
  }

  /** Holds `buf`; `now` releases it with what is held at once (a listener waits for a start). */
  push(buf: Buffer, now: boolean): void {
    this.#held.push(buf);
    this.#bytes += buf.length;
    if (now || this.#bytes >= COALESCE_BYTES) return this.release();
    if (this.#timer) {
      if (this.#held.length >= this.#pieces) this.release();
      return;
    }
    const h = this.#hold();
    if (h.ms <= 0 || h.pieces <= 1) return this.release();
    this.#pieces = h.pieces;
    this.#timer = setTimeout(() => this.release(), h.ms);
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
