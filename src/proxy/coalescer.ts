/**
 * MP3, AAC and other frame streams arrive a frame at a time (about 400
 * bytes, 38 a second at 128 kbit/s); writing each to every listener costs
 * a system call per frame per listener. Held until COALESCE_BYTES or
 * COALESCE_MS, they go out as a few writes a second, as Ogg pages do.
 */

/** Frames are released in pieces of at least this many bytes... */
export const COALESCE_BYTES = 4096;
/** ...or after this long, whichever comes first (at 128 kbit/s: every 250 ms, 4 KiB). */
export const COALESCE_MS = 250;

export class Coalescer {
  #held: Buffer[] = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  readonly #out: (buf: Buffer) => void;

  constructor(out: (buf: Buffer) => void) {
    this.#out = out;
  }

  /** Holds `buf`; `now` releases it with what is held at once (a listener waits for a start). */
  push(buf: Buffer, now: boolean): void {
    this.#held.push(buf);
    this.#bytes += buf.length;
    if (this.#bytes >= COALESCE_BYTES || now) this.release();
    else this.#timer ??= setTimeout(() => this.release(), COALESCE_MS);
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
