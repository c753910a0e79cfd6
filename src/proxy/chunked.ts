/**
 * Decodes an HTTP/1.1 chunked request body as it streams in (a source's
 * `PUT` with `Transfer-Encoding: chunked`, as curl -T and ffmpeg's http
 * output send it), so that the audio can go on to Icecast as a plain
 * unframed body. Bytes may arrive split anywhere; a size line is bounded,
 * so a client cannot make it hold memory; trailers are read and dropped.
 */

/** A chunk-size line (hex digits, extensions) longer than this is refused. */
const MAX_LINE = 1024;

export class ChunkedDecoder {
  /** 'size': reading a size line; 'data': inside a chunk; 'crlf': after a chunk's data; 'trailer': after the last chunk; 'done'. */
  #state: 'size' | 'data' | 'crlf' | 'trailer' | 'done' = 'size';
  #line = '';
  #left = 0;
  /** Set once the body is malformed; push() then returns nothing more. */
  error: string | null = null;

  get done(): boolean {
    return this.#state === 'done';
  }

  /** The body bytes in `buf`; subarrays of it, not copies. */
  push(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < buf.length && this.error === null && this.#state !== 'done') {
      if (this.#state === 'data') {
        const n = Math.min(this.#left, buf.length - i);
        out.push(buf.subarray(i, i + n));
        i += n;
        this.#left -= n;
        if (this.#left === 0) this.#state = 'crlf';
        continue;
      }
      // Line-oriented states: read up to the next LF.
      const lf = buf.indexOf(0x0a, i);
      const end = lf < 0 ? buf.length : lf;
      this.#line += buf.toString('latin1', i, end);
      i = lf < 0 ? buf.length : lf + 1;
      if (this.#line.length > MAX_LINE) {
        this.error = 'chunk size line too long';
        break;
      }
      if (lf < 0) break;
      const line = this.#line.replace(/\r$/, '');
      this.#line = '';
      if (this.#state === 'crlf') {
        if (line !== '') this.error = 'chunk data longer than its size';
        else this.#state = 'size';
      } else if (this.#state === 'trailer') {
        if (line === '') this.#state = 'done';
      } else {
        const m = /^([0-9A-Fa-f]{1,12})(?:\s*;.*)?$/.exec(line);
        if (!m) {
          this.error = 'malformed chunk size';
          break;
        }
        this.#left = parseInt(m[1]!, 16);
        this.#state = this.#left === 0 ? 'trailer' : 'data';
      }
    }
    return out;
  }
}
