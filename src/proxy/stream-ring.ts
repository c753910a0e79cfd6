/**
 * The recent stream of one mount as chunks with absolute byte offsets
 * (whole pages for Ogg), bounded in bytes:
 *
 *   ring:   [ c0 | c1 | c2 | c3 | c4 ]      offsets start .. end
 *                       ^ slow listener        ^ caught-up listeners
 *
 * A listener is a position in this stream. Positions never move back, so a
 * listener that fell behind the oldest chunk has lost bytes for good, and
 * memory stays at the ring's size however many listeners lag.
 */

export interface Chunk {
  off: number;
  buf: Buffer;
  /** Starts on a page (Ogg) boundary: a new listener may start here. */
  boundary: boolean;
}

const MP3_SYNC = (b: Buffer, i: number): boolean => b[i] === 0xff && (b[i + 1]! & 0xe0) === 0xe0;

export class StreamRing {
  readonly chunks: Chunk[] = [];
  /** Offset just past the newest byte. */
  end = 0;
  /** May change: the ring is trimmed to it at the next push. */
  capBytes: number;
  #bytes = 0;

  /** Holds at least `capBytes` back from the end (whole chunks). */
  constructor(capBytes: number) {
    this.capBytes = capBytes;
  }

  push(buf: Buffer, boundary: boolean): void {
    this.chunks.push({ off: this.end, buf, boundary });
    this.#bytes += buf.length;
    this.end += buf.length;
    while (this.#bytes - this.chunks[0]!.buf.length >= this.capBytes) this.#bytes -= this.chunks.shift()!.buf.length;
  }

  /** Whether the bytes at `pos` have already left the ring. */
  lost(pos: number): boolean {
    const first = this.chunks[0];
    return first !== undefined && pos < first.off;
  }

  /** The index of the chunk holding `pos`, or -1. */
  indexOf(pos: number): number {
    const r = this.chunks;
    let lo = 0;
    let hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = r[mid]!;
      if (pos < c.off) hi = mid - 1;
      else if (pos >= c.off + c.buf.length) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /**
   * The first place at or after `want` where a listener can start: a page
   * boundary (`pages`), else an MP3/AAC frame sync; the end when none is held.
   */
  startAt(want: number, pages: boolean): number {
    for (const c of this.chunks) {
      if (c.off + c.buf.length <= want) continue;
      if (pages) {
        if (c.boundary && c.off >= want) return c.off;
        continue;
      }
      for (let i = Math.max(0, want - c.off); i < c.buf.length - 1; i++) if (MP3_SYNC(c.buf, i)) return c.off + i;
    }
    return this.end;
  }

  clear(): void {
    this.chunks.length = 0;
    this.#bytes = 0;
  }
}
