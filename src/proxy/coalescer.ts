/**
 * MP3, AAC and other frame streams arrive a frame at a time (about 400
 * bytes, 38 a second at 128 kbit/s), Ogg a page at a time (a few a second);
 * writing each to every listener costs a system call per piece per
 * listener, and the kernel's TCP path is most of what a listener costs.
 * Held, pieces go out as fewer writes.
 *
 * How many to hold is a trade between CPU and delay that depends on how
 * many listen (holdOf): a hub with a few listeners passes pieces on as
 * they come, as Icecast does, since its writes cost little in all; a
 * crowded one holds them up to CROWD_BYTES or CROWD_MS, where each
 * listener costs about one write a second.
 *
 * In between, a hub of a few hundred holds a frame until the next one
 * arrives or FEW_MS have passed (or 4 KiB are held): Icecast often passes
 * a source's frames on in bursts, which then go out as one write, and a
 * frame alone waits at most FEW_MS. With 1,000 listeners on a mount (`npm run bench --
 * latency`), holding by count alone cost more delay at the median than it
 * saved writes were worth: three pieces (at most 80 ms) 60 ms over
 * Icecast's own listeners, two (at most 50 ms) 42 ms, two or 20 ms 14 ms.
 * Ogg pages are held only in a crowd: a page is already a quarter of a
 * second or more.
 */

/** How a hub holds pieces: released once `pieces` or `bytes` are held, or `ms` after the first. */
export interface Hold {
  readonly pieces: number;
  readonly bytes: number;
  readonly ms: number;
}

/** A crowded hub's pieces go out at least this large (a second at 128 kbit/s)... */
export const CROWD_BYTES = 16384;
/** ...or this long after the first was held. */
export const CROWD_MS = 1000;
/** Frames a hub of a few hundred writes together at most... */
export const FEW_PIECES = 2;
/** ...waiting no longer than this for the next one. */
export const FEW_MS = 20;

const NO_HOLD: Hold = { pieces: 1, bytes: 0, ms: 0 };
const FEW: Hold = { pieces: FEW_PIECES, bytes: 4096, ms: FEW_MS };
/** A mount of 1,000 listeners has 500 a hub on two workers. */
const CROWD_FROM = 500;
/** A mount of 5,000 on two workers. */
const CROWD_FULL = 2500;

/**
 * How a hub with `listeners` holds pieces; `pages` for Ogg. Below 64 not at
 * all. Up to CROWD_FROM, frames FEW_PIECES at a time (at most 4 KiB), none
 * waiting longer than FEW_MS, and pages not at all. Then longer and larger
 * with each listener, up to CROWD_MS and CROWD_BYTES from CROWD_FULL.
 */
export function holdOf(listeners: number, pages = false): Hold {
  if (listeners < 64 || (pages && listeners <= CROWD_FROM)) return NO_HOLD;
  if (listeners <= CROWD_FROM) return FEW;
  const f = Math.min(1, (listeners - CROWD_FROM) / (CROWD_FULL - CROWD_FROM));
  return {
    pieces: Infinity,
    bytes: Math.round(FEW.bytes + f * (CROWD_BYTES - FEW.bytes)),
    ms: Math.round(FEW.ms + f * (CROWD_MS - FEW.ms)),
  };
}

const CROWD: Hold = holdOf(CROWD_FULL);

export class Coalescer {
  #held: Buffer[] = [];
  #bytes = 0;
  /** The hold taken when the first piece was held. */
  #now: Hold = NO_HOLD;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  readonly #out: (buf: Buffer) => void;
  readonly #hold: () => Hold;

  /** `hold` says how to hold pieces now (holdOf the listeners); by default as a full crowd. */
  constructor(out: (buf: Buffer) => void, hold: () => Hold = () => CROWD) {
    this.#out = out;
    this.#hold = hold;
  }

  /** Holds `buf`; `now` releases it with what is held at once (a listener waits for a start). */
  push(buf: Buffer, now: boolean): void {
    if (this.#stopped) return;
    this.#held.push(buf);
    this.#bytes += buf.length;
    if (now) return this.release();
    if (this.#timer === null) {
      this.#now = this.#hold();
      if (this.#now.ms <= 0) return this.release();
      this.#timer = setTimeout(() => this.release(), this.#now.ms);
    }
    if (this.#bytes >= this.#now.bytes || this.#held.length >= this.#now.pieces) this.release();
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
