/**
 * Just enough DNS wire format for the hot path: read a query's header,
 * question and EDNS OPT record without allocating more than the name, and
 * say precisely why a packet is malformed. Everything else (encoding
 * answers) uses dns-packet, off the hot path.
 *
 *   header: ID(2) FLAGS(2) QDCOUNT(2) ANCOUNT(2) NSCOUNT(2) ARCOUNT(2)
 *   FLAGS:  QR(1) OPCODE(4) AA(1) TC(1) RD(1) RA(1) Z(1) AD(1) CD(1) RCODE(4)
 */

export const QR = 0x8000;
export const AA = 0x0400;
export const TC = 0x0200;
export const RD = 0x0100;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** Extended RCODE BADVERS (16): 1 in the OPT record's upper bits, 0 in the header. */
export const BADVERS_EXT = 1;

export const TYPE = { A: 1, NS: 2, SOA: 6, HINFO: 13, AAAA: 28, OPT: 41, ANY: 255 } as const;
export const CLASS_IN = 1;

export interface Query {
  id: number;
  flags: number;
  opcode: number;
  /** Lower-cased, without the trailing dot ('' for the root). */
  name: string;
  /** Byte offset where the question's name starts (12) and its length on the wire. */
  qnameEnd: number;
  qtype: number;
  qclass: number;
  /** End of the question section. */
  questionEnd: number;
  edns: { udpSize: number; version: number; do: boolean } | null;
}

export type ParseResult =
  | { ok: true; q: Query }
  /** `id` is known when the header could be read: answer FORMERR; otherwise drop. */
  | { ok: false; id: number | null; why: string };

/** Room for the longest name spelled with dots (255 bytes on the wire). */
const NAME_BYTES = Buffer.alloc(256);

/**
 * The name at `off` (checked already) with what would make the text
 * ambiguous escaped (a dot, a space or a byte outside printable ASCII
 * inside a label); such names match nothing in the zone.
 */
function escapedName(buf: Buffer, off: number): string {
  const labels: string[] = [];
  for (let len = buf[off]!; len !== 0; len = buf[off]!) {
    let label = '';
    for (let i = off + 1; i < off + 1 + len; i++) {
      let c = buf[i]!;
      if (c >= 0x41 && c <= 0x5a) c += 32;
      label += c === 0x2e || c < 0x21 || c > 0x7e ? `\\${c.toString().padStart(3, '0')}` : String.fromCharCode(c);
    }
    labels.push(label);
    off += 1 + len;
  }
  return labels.join('.');
}

export function parseQuery(buf: Buffer): ParseResult {
  if (buf.length < 12) return { ok: false, id: null, why: 'shorter than a header' };
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if ((flags & QR) !== 0) return { ok: false, id: null, why: 'a response, not a query' };
  const opcode = (flags >> 11) & 0xf;
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  if (qd !== 1) return { ok: false, id, why: `${qd} questions` };
  let off = 12;
  // The name is spelled into NAME_BYTES (lower case, dots between labels) and made a string once:
  // a string per label and their concatenation cost more than the rest of answering.
  let n = 0;
  let plain = true;
  for (let hops = 0; ; hops++) {
    if (off >= buf.length || hops > 127) return { ok: false, id, why: 'truncated name' };
    const len = buf[off]!;
    if (len === 0) {
      off++;
      break;
    }
    if (len > 63) return { ok: false, id, why: 'compressed or invalid label in the question' };
    if (off + 1 + len > buf.length) return { ok: false, id, why: 'truncated label' };
    if (n > 0) NAME_BYTES[n++] = 0x2e;
    for (let i = off + 1; i < off + 1 + len; i++) {
      let c = buf[i]!;
      if (c >= 0x41 && c <= 0x5a) c += 32;
      else if (c === 0x2e || c < 0x21 || c > 0x7e) plain = false;
      NAME_BYTES[n++] = c;
    }
    off += 1 + len;
    if (off - 12 > 255) return { ok: false, id, why: 'name longer than 255 bytes' };
  }
  const name = plain ? NAME_BYTES.toString('latin1', 0, n) : escapedName(buf, 12);
  if (off + 4 > buf.length) return { ok: false, id, why: 'truncated question' };
  const qtype = buf.readUInt16BE(off);
  const qclass = buf.readUInt16BE(off + 2);
  const qnameEnd = off;
  off += 4;
  const questionEnd = off;
  let edns: Query['edns'] = null;
  if (an === 0 && ns === 0 && ar > 0) {
    // Look for OPT among the additional records (normally the only one).
    for (let i = 0; i < ar; i++) {
      const start = off;
      // Owner name: root for OPT; skip any other name (labels or a pointer).
      for (;;) {
        if (off >= buf.length) return { ok: false, id, why: 'truncated additional record' };
        const l = buf[off]!;
        if (l === 0) {
          off++;
          break;
        }
        if ((l & 0xc0) === 0xc0) {
          off += 2;
          break;
        }
        off += 1 + l;
      }
      if (off + 10 > buf.length) return { ok: false, id, why: 'truncated additional record' };
      const type = buf.readUInt16BE(off);
      const rdlen = buf.readUInt16BE(off + 8);
      if (off + 10 + rdlen > buf.length) return { ok: false, id, why: 'truncated additional record' };
      if (type === TYPE.OPT) {
        if (edns !== null) return { ok: false, id, why: 'two OPT records' };
        if (buf[start] !== 0) return { ok: false, id, why: 'OPT owner is not the root' };
        edns = { udpSize: buf.readUInt16BE(off + 2), version: buf[off + 5]!, do: (buf.readUInt16BE(off + 6) & 0x8000) !== 0 };
      }
      off += 10 + rdlen;
    }
  }
  return { ok: true, q: { id, flags, opcode, name, qnameEnd, qtype, qclass, questionEnd, edns } };
}
