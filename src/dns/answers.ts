/**
 * Answers, encoded once per zone version and reused: for each (name, type,
 * EDNS or not) the answer is kept as the bytes after the question, plus the
 * header template, in a few rotations of the address records so that
 * successive answers spread clients over the nodes. Per query the hot path
 * only builds the header, copies the query's own question (so its case is
 * echoed as sent) and the cached record bytes.
 *
 * NXDOMAIN, NODATA and REFUSED answers depend neither on the name nor on
 * the type asked (the question is copied from the query, the rest is the
 * zone's SOA or nothing), so each is kept once per EDNS flag: a flood of
 * random names or random types cannot grow the cache. What is left is one
 * entry per (zone name, address/apex type, EDNS flag), and a hard bound on
 * the number of entries guards that too: past it the oldest entry goes.
 */
import dnsPacket from 'dns-packet';
import { AA, BADVERS_EXT, RCODE, TYPE } from './wire.ts';
import type { Zone, ZoneConfig } from './zone.ts';

/** The UDP payload size radioai advertises in its OPT record (the DNS flag day 2020 figure). */
export const OUR_UDP_SIZE = 1232;

type Record = dnsPacket.Answer;

export interface Answer {
  /** AA and RCODE bits of the header. */
  flags: number;
  counts: [an: number, ns: number, ar: number];
  /** Encoded records (answer, authority, additional incl. OPT) in rotations. */
  rotations: Buffer[];
  /**
   * The rotation the next query gets (modulo their number). One turn per answer, not per server:
   * a shared turn falls into step with a query pattern that repeats (the same few names in the same
   * order) and gives one name the same rotation every time.
   */
  turn: number;
  /** The records when the answer does not fit: OPT only (TC is set by the sender). */
  truncated: { counts: [number, number, number]; rrs: Buffer };
}

const opt = (ext = 0): Record => ({ name: '.', type: 'OPT', udpPayloadSize: OUR_UDP_SIZE, extendedRcode: ext, ednsVersion: 0, flags: 0 } as unknown as Record);

function soa(zone: Zone, cfg: ZoneConfig): Record {
  return {
    name: zone.domain, type: 'SOA', ttl: cfg.apexTtl,
    data: { mname: zone.ns[0] ?? zone.domain, rname: `hostmaster.${zone.domain}`, serial: zone.serial >>> 0, refresh: 3600, retry: 600, expire: 86_400, minimum: cfg.ttl },
  };
}

/** Records in wire format: a packet of just these records, less its 12-byte header. */
function encodeAll(records: Record[]): Buffer {
  return Buffer.from(dnsPacket.encode({ type: 'response', answers: records }).subarray(12));
}

function rotate<T>(xs: T[], k: number): T[] {
  return xs.length === 0 ? xs : [...xs.slice(k % xs.length), ...xs.slice(0, k % xs.length)];
}

function build(flags: number, answers: Record[][], authority: Record[], additional: Record[], edns: boolean): Answer {
  const extra = edns ? [...additional, opt()] : additional;
  const rotations = answers.map((an) => encodeAll([...an, ...authority, ...extra]));
  const an = answers[0]!.length;
  return {
    flags,
    counts: [an, authority.length, extra.length],
    rotations,
    turn: 0,
    truncated: { counts: [0, 0, edns ? 1 : 0], rrs: edns ? encodeAll([opt()]) : Buffer.alloc(0) },
  };
}

/** Entries an AnswerCache keeps at most: far more than a zone of a few hundred nodes needs (its names x 5 types x 2). */
export const ANSWER_CACHE_ENTRIES = 8192;

/** The query types whose answer depends on the name; every other type gets the zone's one NODATA answer. */
function namedType(qtype: number): boolean {
  return qtype === TYPE.A || qtype === TYPE.AAAA || qtype === TYPE.SOA || qtype === TYPE.NS || qtype === TYPE.ANY;
}

/** The end of a cache key per EDNS flag and named query type, so that a key is one concatenation. */
const KEY_TAGS = [0, 1].map((e) => new Map([TYPE.A, TYPE.AAAA, TYPE.SOA, TYPE.NS, TYPE.ANY].map((t) => [t as number, `\0${t}\0${e}`])));

export class AnswerCache {
  #zone: Zone;
  /** `.` and the zone's domain: a name in the zone ends with it. */
  #suffix: string;
  readonly #cfg: ZoneConfig;
  readonly #max: number;
  readonly #byKey = new Map<string, Answer>();

  constructor(zone: Zone, cfg: ZoneConfig, maxEntries = ANSWER_CACHE_ENTRIES) {
    this.#zone = zone;
    this.#suffix = `.${zone.domain}`;
    this.#cfg = cfg;
    this.#max = Math.max(8, maxEntries);
  }

  /** Encoded answers kept now. */
  get size(): number {
    return this.#byKey.size;
  }

  get zone(): Zone {
    return this.#zone;
  }

  /** A new zone version: drop every encoded answer. */
  setZone(zone: Zone): void {
    this.#zone = zone;
    this.#suffix = `.${zone.domain}`;
    this.#byKey.clear();
  }

  badvers(): Answer {
    return build(RCODE.NOERROR, [[]], [], [opt(BADVERS_EXT)], false);
  }

  /** The answer for a well-formed IN query of `name` (lower-case) and `qtype`. */
  get(name: string, qtype: number, edns: boolean): Answer {
    const zone = this.#zone;
    const e = edns ? 1 : 0;
    if (name !== zone.domain && !name.endsWith(this.#suffix)) return this.#byKey.get(`R${e}`) ?? this.#keep(`R${e}`, build(RCODE.REFUSED, [[]], [], [], edns));
    const addrs = zone.names.get(name);
    if (!addrs && name !== zone.domain) {
      return this.#byKey.get(`X${e}`) ?? this.#keep(`X${e}`, build(AA | RCODE.NXDOMAIN, [[]], [soa(zone, this.#cfg)], [], edns));
    }
    if (!namedType(qtype)) return this.#nodata(e);
    // The hot path: one key string (the name and a tag made once) and one map lookup.
    const key = name + KEY_TAGS[e]!.get(qtype)!;
    return this.#byKey.get(key) ?? this.#keep(key, this.#positive(name, qtype, addrs ?? { a: [], aaaa: [] }, edns));
  }

  /** NOERROR with no records and the SOA: the same bytes whatever name or type was asked. */
  #nodata(e: 0 | 1): Answer {
    return this.#byKey.get(`N${e}`) ?? this.#keep(`N${e}`, build(AA | RCODE.NOERROR, [[]], [soa(this.#zone, this.#cfg)], [], e === 1));
  }

  #keep(key: string, a: Answer): Answer {
    // Bounded whatever the zone: past the bound the oldest entry goes (it is rebuilt when asked again).
    if (this.#byKey.size >= this.#max) this.#byKey.delete(this.#byKey.keys().next().value!);
    this.#byKey.set(key, a);
    return a;
  }

  #positive(name: string, qtype: number, addrs: { a: string[]; aaaa: string[] }, edns: boolean): Answer {
    const zone = this.#zone;
    const cfg = this.#cfg;
    const apex = name === zone.domain;
    const nodata = (): Answer => this.#nodata(edns ? 1 : 0);
    const addressRecords = (type: 'A' | 'AAAA', list: string[]): Record[][] => {
      const n = Math.min(list.length, 8);
      return Array.from({ length: Math.max(1, n) }, (_, k) =>
        rotate(list, k).slice(0, cfg.maxRecords).map((data): Record => ({ name, type, ttl: cfg.ttl, data })));
    };
    switch (qtype) {
      case TYPE.A:
        return addrs.a.length > 0 ? build(AA, addressRecords('A', addrs.a), [], [], edns) : nodata();
      case TYPE.AAAA:
        return addrs.aaaa.length > 0 ? build(AA, addressRecords('AAAA', addrs.aaaa), [], [], edns) : nodata();
      case TYPE.SOA:
        return apex ? build(AA, [[soa(zone, cfg)]], [], [], edns) : nodata();
      case TYPE.NS: {
        if (!apex) return nodata();
        const ns = zone.ns.map((n): Record => ({ name, type: 'NS', ttl: cfg.apexTtl, data: n }));
        const glue: Record[] = [];
        for (const n of zone.ns) {
          const g = zone.names.get(n);
          for (const a of g?.a ?? []) glue.push({ name: n, type: 'A', ttl: cfg.ttl, data: a });
          for (const a of g?.aaaa ?? []) glue.push({ name: n, type: 'AAAA', ttl: cfg.ttl, data: a });
        }
        return build(AA, [ns], [], glue, edns);
      }
      case TYPE.ANY:
        // RFC 8482: answer ANY minimally instead of listing every record.
        return build(AA, [[{ name, type: 'HINFO', ttl: cfg.ttl, data: { cpu: 'RFC8482', os: '' } }]], [], [], edns);
      default:
        return nodata();
    }
  }
}
