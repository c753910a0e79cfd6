/**
 * DNS messages over TCP arrive as frames: a two-byte length, then the
 * message (RFC 1035 4.2.2). A client decides how the bytes are cut into
 * segments, down to one byte per segment, so the reader keeps the chunks
 * as they come and joins them only once a frame is complete: the bytes it
 * copies stay proportional to the bytes received, however they are cut
 * (joining the whole buffer on every segment costs the square of a frame's
 * length when it trickles in a byte at a time).
 */

export type Frame = Buffer | 'incomplete' | 'not a query';

export class FrameReader {
  readonly #minBytes: number;
  readonly #maxBytes: number;
  #chunks: Buffer[] = [];
  #have = 0;
  /** Bytes copied to join chunks, in all: at most about twice the bytes received. */
  copied = 0;

  /** Frames announcing a message shorter than `minBytes` or longer than `maxBytes` are not queries. */
  constructor(minBytes: number, maxBytes: number) {
    this.#minBytes = minBytes;
    this.#maxBytes = maxBytes;
  }

  /** Bytes received and not yet returned as a message. */
  get buffered(): number {
    return this.#have;
  }

  /** Memory the reader keeps alive: the whole allocations its chunks are views of. */
  get retained(): number {
    let n = 0;
    for (const c of this.#chunks) n += c.buffer.byteLength;
    return n;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#have += chunk.length;
  }

  /**
   * The next complete message (a view of the received bytes), 'incomplete' until all its bytes are
   * here, or 'not a query' as soon as the length says so: the caller closes the connection rather
   * than wait for bytes it would not answer.
   */
  next(): Frame {
    if (this.#have < 2) return 'incomplete';
    let first = this.#chunks[0]!;
    const len = first.length >= 2 ? first.readUInt16BE(0) : (first[0]! << 8) | this.#chunks[1]![0]!;
    if (len < this.#minBytes || len > this.#maxBytes) return 'not a query';
    const end = 2 + len;
    if (this.#have < end) {
      // The start of a frame left at the end of a large read keeps that whole read's memory while the
      // rest trickles in: copy it out, once per read.
      if (this.#chunks.length === 1 && first.buffer.byteLength > 2 * end) {
        this.#chunks[0] = Buffer.allocUnsafeSlow(first.length);
        first.copy(this.#chunks[0]);
        this.copied += first.length;
      }
      return 'incomplete';
    }
    if (first.length < end) {
      // Once per frame: what follows the frame in the last chunk is copied too, and then
      // served from the joined buffer without another copy.
      first = Buffer.concat(this.#chunks, this.#have);
      this.copied += this.#have;
      this.#chunks = [first];
    }
    const msg = first.subarray(2, end);
    if (first.length === end) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(end);
    this.#have -= end;
    return msg;
  }
}
