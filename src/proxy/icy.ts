/**
 * ICY metadata (the SHOUTcast convention Icecast follows for MP3 and AAC):
 * with `icy-metaint: N`, every N audio bytes are followed by one length byte
 * L and L*16 bytes of metadata such as `StreamTitle='...';`.
 *
 * IcyStripper removes the blocks from the upstream (keeping the title);
 * IcyInserter puts blocks into one listener's copy of the stream.
 */

export const ICY_METAINT = 16_000;

export class IcyStripper {
  readonly #metaint: number;
  #untilMeta: number;
  #metaLeft = -1;
  #meta: Buffer[] = [];
  /** The latest metadata block's text (e.g. "StreamTitle='x';"), or ''. */
  metadata = '';

  constructor(metaint: number) {
    this.#metaint = metaint;
    this.#untilMeta = metaint;
  }

  /** Returns the audio bytes of `chunk`; updates `metadata` when a block completes. */
  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.#metaLeft === -1) {
        const n = Math.min(this.#untilMeta, chunk.length - off);
        out.push(chunk.subarray(off, off + n));
        off += n;
        this.#untilMeta -= n;
        if (this.#untilMeta === 0) this.#metaLeft = -2; // the length byte comes next
      } else if (this.#metaLeft === -2) {
        this.#metaLeft = chunk[off]! * 16;
        off++;
        this.#meta = [];
        if (this.#metaLeft === 0) this.#endMeta();
      } else {
        const n = Math.min(this.#metaLeft, chunk.length - off);
        this.#meta.push(chunk.subarray(off, off + n));
        off += n;
        this.#metaLeft -= n;
        if (this.#metaLeft === 0) this.#endMeta();
      }
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  #endMeta(): void {
    if (this.#meta.length > 0) {
      // latin1 maps every byte to one character and back: the title's bytes reach listeners exactly as
      // the Icecast upstream sent them, whatever their encoding (UTF-8, or Latin-1 after a charset= update).
      const text = Buffer.concat(this.#meta).toString('latin1').replace(/\0+$/, '');
      if (text !== '') this.metadata = text;
    }
    this.#metaLeft = -1;
    this.#untilMeta = this.#metaint;
  }
}

/** One metadata block: length byte and the text (one byte per character, see IcyStripper) padded with NULs to a multiple of 16. */
export function icyBlock(text: string): Buffer {
  const body = Buffer.from(text, 'latin1').subarray(0, 255 * 16);
  const len = Math.ceil(body.length / 16);
  const block = Buffer.alloc(1 + len * 16);
  block[0] = len;
  body.copy(block, 1);
  return block;
}

const EMPTY = Buffer.from([0]);

export class IcyInserter {
  #untilMeta = ICY_METAINT;
  #sent = '';

  /** `chunk` with a metadata block after every ICY_METAINT audio bytes; the title only when it changed. */
  transform(chunk: Buffer, metadata: string): Buffer {
    if (chunk.length < this.#untilMeta) {
      this.#untilMeta -= chunk.length;
      return chunk;
    }
    const parts: Buffer[] = [];
    let off = 0;
    while (chunk.length - off >= this.#untilMeta) {
      parts.push(chunk.subarray(off, off + this.#untilMeta));
      off += this.#untilMeta;
      if (metadata !== this.#sent) {
        parts.push(icyBlock(metadata));
        this.#sent = metadata;
      } else parts.push(EMPTY);
      this.#untilMeta = ICY_METAINT;
    }
    if (off < chunk.length) {
      parts.push(chunk.subarray(off));
      this.#untilMeta -= chunk.length - off;
    }
    return Buffer.concat(parts);
  }
}
