/**
 * What each query gets, whatever carried it: parse, refuse what is not
 * served, look the name up in the answer cache (rebuilt only when the zone
 * serial in the snapshot moves), rotate the records, truncate to the
 * client's size. Malformed input gets at most a FORMERR and never throws
 * out of here by design.
 */
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { S } from '../ipc/worker-stats.ts';
import { AnswerCache, type Answer } from './answers.ts';
import type { LocalCounts } from './local-counts.ts';
import { headerOnly, NO_QUESTION, writePlan, type Plan } from './plan.ts';
import { CLASS_IN, QR, RCODE, RD, TC, parseQuery, type Query } from './wire.ts';
import { buildZone, type ZoneConfig } from './zone.ts';

export class Responder {
  readonly #reader: SnapshotReader;
  readonly #zone: ZoneConfig;
  readonly #counts: LocalCounts;
  readonly #cache: AnswerCache;
  #seq = -1;
  #serial = -1;

  constructor(reader: SnapshotReader, zone: ZoneConfig, counts: LocalCounts) {
    this.#reader = reader;
    this.#zone = zone;
    this.#counts = counts;
    this.#cache = new AnswerCache(buildZone(reader.current(), zone, 0), zone);
  }

  /** Brings the answer cache in line with the zone serial (cheap when nothing moved). */
  #refresh(): void {
    const seq = this.#reader.seq();
    if (seq === this.#seq) return;
    this.#seq = seq;
    const snap = this.#reader.current();
    if (snap.zoneSerial === this.#serial) return;
    this.#serial = snap.zoneSerial;
    this.#cache.setZone(buildZone(snap, this.#zone, snap.zoneSerial));
  }

  /** The response to `msg` as one buffer, or null to stay silent. */
  answer(msg: Buffer, udp: boolean): Buffer | null {
    const p = this.plan(msg, udp);
    if (p === null) return null;
    const out = Buffer.allocUnsafe(p.size);
    writePlan(p, out, 0);
    return out;
  }

  /** What to answer `msg` with, over UDP (`udp`: the client's size applies) or TCP; null to stay silent. */
  plan(msg: Buffer, udp: boolean): Plan | null {
    const counts = this.#counts;
    counts.add(S.DNS_QUERIES);
    const parsed = parseQuery(msg);
    if (!parsed.ok) {
      if (parsed.id === null) return null;
      counts.add(S.DNS_FORMERR);
      return headerOnly(parsed.id, QR | RCODE.FORMERR, NO_QUESTION);
    }
    const q = parsed.q;
    const question = msg.subarray(12, q.questionEnd);
    if (q.opcode !== 0) {
      counts.add(S.DNS_NOTIMP);
      return headerOnly(q.id, QR | (q.opcode << 11) | RCODE.NOTIMP, NO_QUESTION);
    }
    this.#refresh();
    let a: Answer;
    const badvers = q.edns !== null && q.edns.version > 0;
    if (badvers) a = this.#cache.badvers();
    else if (q.qclass !== CLASS_IN) {
      counts.add(S.DNS_REFUSED);
      return headerOnly(q.id, QR | (q.flags & RD) | RCODE.REFUSED, question);
    } else a = this.#cache.get(q.name, q.qtype, q.edns !== null);
    const rcode = a.flags & 0xf;
    if (rcode === RCODE.NXDOMAIN) counts.add(S.DNS_NXDOMAIN);
    else if (rcode === RCODE.REFUSED) counts.add(S.DNS_REFUSED);
    const limit = !udp ? 65_535 : q.edns ? Math.max(512, Math.min(q.edns.udpSize, 65_535)) : 512;
    return this.#fit(q, question, a, limit, !badvers);
  }

  /** The next rotation of `a`, or its truncated form when it exceeds the client's size; `same`: the question always gets `a`. */
  #fit(q: Query, question: Buffer, a: Answer, limit: number, same: boolean): Plan {
    const answer = same ? a : null;
    const rrs = a.rotations[a.turn++ % a.rotations.length]!;
    const flags = QR | (q.flags & RD) | a.flags;
    if (12 + question.length + rrs.length <= limit) {
      return { id: q.id, flags, counts: a.counts, question, body: rrs, size: 12 + question.length + rrs.length, answer };
    }
    // Too big for the client's UDP size: TC, no records but OPT, and the client retries over TCP.
    this.#counts.add(S.DNS_TRUNCATED);
    const t = a.truncated;
    return { id: q.id, flags: flags | TC, counts: t.counts, question, body: t.rrs, size: 12 + question.length + t.rrs.length, answer };
  }
}
