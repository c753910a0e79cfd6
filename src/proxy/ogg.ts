/**
 * Incremental Ogg page splitter (RFC 3533). The hub feeds it the upstream's
 * bytes as they come and gets whole pages back, so that listeners always
 * start on a page boundary and get the codec header pages first.
 *
 *   0      4   5      6          14       18         22    26    27
 *   +------+---+------+----------+--------+----------+-----+-----+------------+------+
 *   | OggS |ver| type | granule  | serial | sequence | crc |nsegs| seg table  | data |
 *   +------+---+------+----------+--------+----------+-----+-----+------------+------+
 *   type bits: 1 continued packet, 2 beginning of stream (BOS), 4 end of stream (EOS)
 */

export interface OggPage {
  data: Buffer;
  bos: boolean;
  eos: boolean;
  /** Granule position; -1n when no packet ends on this page. */
  granule: bigint;
  serial: number;
}

const CAPTURE = Buffer.from('OggS');
/** No legal page is larger: 27 + 255 + 255 * 255. */
const MAX_PAGE = 65_307;

export class OggSplitter {
  #buf: Buffer = Buffer.alloc(0);
  /** Bytes skipped while looking for a capture pattern (garbage or a mid-page start). */
  skipped = 0;

  push(chunk: Buffer): OggPage[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const pages: OggPage[] = [];
    let off = 0;
    const b = this.#buf;
    for (;;) {
      if (b.length - off < 27) break;
      if (b[off] !== 0x4f || b[off + 1] !== 0x67 || b[off + 2] !== 0x67 || b[off + 3] !== 0x53 || b[off + 4] !== 0) {
        const next = b.indexOf(CAPTURE, off + 1);
        const to = next < 0 ? Math.max(off, b.length - 3) : next;
        this.skipped += to - off;
        off = to;
        if (next < 0) break;
        continue;
      }
      const nsegs = b[off + 26]!;
      if (b.length - off < 27 + nsegs) break;
      let body = 0;
      for (let i = 0; i < nsegs; i++) body += b[off + 27 + i]!;
      const size = 27 + nsegs + body;
      if (size > MAX_PAGE) {
        off++;
        continue;
      }
      if (b.length - off < size) break;
      const type = b[off + 5]!;
      // Copy: the page outlives this buffer (ring, headers), and a view would pin all of it.
      const data = Buffer.from(b.subarray(off, off + size));
      pages.push({ data, bos: (type & 2) !== 0, eos: (type & 4) !== 0, granule: b.readBigInt64LE(off + 6), serial: b.readUInt32LE(off + 14) });
      off += size;
    }
    this.#buf = off === 0 ? b : Buffer.from(b.subarray(off));
    return pages;
  }

  reset(): void {
    this.#buf = Buffer.alloc(0);
  }
}

/**
 * Tracks which pages are codec headers: after a BOS page, the pages whose
 * granule position is 0 (or -1, a header packet still continuing) belong to
 * the headers; the first page with a real granule position starts the audio.
 * A new BOS (a chained stream) starts a new header set.
 */
export class OggHeaderTracker {
  headers: Buffer[] = [];
  #inHeaders = false;
  /** Increases with every new chain (new BOS after audio). */
  chain = 0;

  /** Returns true when `page` is a header page. */
  classify(page: OggPage): boolean {
    if (page.bos) {
      if (!this.#inHeaders) {
        this.headers = [];
        this.chain++;
      }
      this.#inHeaders = true;
      this.headers.push(page.data);
      return true;
    }
    if (this.#inHeaders && (page.granule === 0n || page.granule === -1n)) {
      this.headers.push(page.data);
      return true;
    }
    this.#inHeaders = false;
    return false;
  }

  reset(): void {
    this.#inHeaders = false;
  }
}
