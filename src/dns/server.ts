/**
 * The authoritative DNS server of one worker thread: UDP and TCP on
 * DNS_PORT for every bind address, with `reusePort` so that every worker
 * serves (Node 22). Answers come from AnswerCache, rebuilt only when the
 * zone serial in the snapshot moves. Malformed input costs at most one
 * FORMERR; nothing a client sends can throw out of here.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { SnapshotReader } from '../shared/snapshot-reader.ts';
import type { LatencyRecorder } from '../shared/latency.ts';
import { S, type WorkerStats } from '../shared/worker-stats.ts';
import { AnswerCache, type Answer } from './answers.ts';
import { Rrl } from './rrl.ts';
import { CLASS_IN, QR, RCODE, RD, TC, parseQuery, type Query } from './wire.ts';
import { buildZone, type ZoneConfig } from './zone.ts';

export const DNS_LIMITS = {
  /** A TCP connection with no complete query for this long is closed. */
  tcpIdleMs: 10_000,
  /** TCP connections per worker. */
  tcpConnections: 1000,
} as const;

export interface DnsOptions {
  reader: SnapshotReader;
  stats: WorkerStats;
  zone: ZoneConfig;
  /** Responses per second per client prefix over UDP; 0 = unlimited. */
  rrl: number;
  latency?: LatencyRecorder;
}

/** A bare header answer (FORMERR, NOTIMP, RRL slip): no records, optionally the question. */
function headerOnly(id: number, flags: number, question: Buffer | null): Buffer {
  const out = Buffer.alloc(12 + (question?.length ?? 0));
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(question ? 1 : 0, 4);
  question?.copy(out, 12);
  return out;
}

export class DnsServer {
  readonly #o: DnsOptions;
  readonly #cache: AnswerCache;
  readonly #rrl: Rrl;
  readonly #udp: UdpSocket[] = [];
  readonly #tcp: Server[] = [];
  #seq = -1;
  #serial = -1;
  #turn = 0;
  /** Counters kept locally and added to the shared row twice a second: no atomics per query. */
  readonly #counts = new Map<number, number>();
  readonly #flush: NodeJS.Timeout;

  constructor(o: DnsOptions) {
    this.#o = o;
    this.#flush = setInterval(() => this.#flushCounts(), 500);
    this.#flush.unref();
    this.#rrl = new Rrl(o.rrl);
    this.#cache = new AnswerCache(buildZone(o.reader.current(), o.zone, 0), o.zone);
  }

  async listen(addrs: string[], port: number): Promise<void> {
    for (const host of addrs) {
      await new Promise<void>((resolve, reject) => {
        const sock = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reusePort: true });
        sock.once('error', reject);
        sock.on('message', (msg, rinfo) => this.#onUdp(sock, msg, rinfo.address, rinfo.port));
        sock.bind({ address: host, port }, () => {
          sock.off('error', reject);
          sock.on('error', () => undefined);
          this.#udp.push(sock);
          resolve();
        });
      });
      await new Promise<void>((resolve, reject) => {
        const server = createServer((c) => this.#onTcp(c));
        server.maxConnections = DNS_LIMITS.tcpConnections;
        server.once('error', reject);
        server.listen({ host, port, reusePort: true }, () => {
          server.off('error', reject);
          server.on('error', () => undefined);
          this.#tcp.push(server);
          resolve();
        });
      });
    }
  }

  #count(word: number): void {
    this.#counts.set(word, (this.#counts.get(word) ?? 0) + 1);
  }

  #flushCounts(): void {
    for (const [word, n] of this.#counts) this.#o.stats.add(word, n);
    this.#counts.clear();
  }

  close(): void {
    clearInterval(this.#flush);
    this.#flushCounts();
    for (const s of this.#udp.splice(0)) s.close();
    for (const s of this.#tcp.splice(0)) s.close();
  }

  /** Brings the answer cache in line with the zone serial (cheap when nothing moved). */
  #refresh(): void {
    const seq = this.#o.reader.seq();
    if (seq === this.#seq) return;
    this.#seq = seq;
    const snap = this.#o.reader.current();
    if (snap.zoneSerial === this.#serial) return;
    this.#serial = snap.zoneSerial;
    this.#cache.setZone(buildZone(snap, this.#o.zone, snap.zoneSerial));
  }

  /** The response to `msg`, or null to stay silent. `limit` is the UDP size, or 65535 over TCP. */
  answer(msg: Buffer, udp: boolean): Buffer | null {
    this.#count(S.DNS_QUERIES);
    const parsed = parseQuery(msg);
    if (!parsed.ok) {
      if (parsed.id === null) return null;
      this.#count(S.DNS_FORMERR);
      return headerOnly(parsed.id, QR | RCODE.FORMERR, null);
    }
    const q = parsed.q;
    const question = msg.subarray(12, q.questionEnd);
    if (q.opcode !== 0) {
      this.#count(S.DNS_NOTIMP);
      return headerOnly(q.id, QR | (q.opcode << 11) | RCODE.NOTIMP, null);
    }
    this.#refresh();
    let a: Answer;
    if (q.edns && q.edns.version > 0) a = this.#cache.badvers();
    else if (q.qclass !== CLASS_IN) {
      this.#count(S.DNS_REFUSED);
      return headerOnly(q.id, QR | (q.flags & RD) | RCODE.REFUSED, question);
    } else a = this.#cache.get(q.name, q.qtype, q.edns !== null);
    const rcode = a.flags & 0xf;
    if (rcode === RCODE.NXDOMAIN) this.#count(S.DNS_NXDOMAIN);
    else if (rcode === RCODE.REFUSED) this.#count(S.DNS_REFUSED);
    const limit = !udp ? 65_535 : q.edns ? Math.max(512, Math.min(q.edns.udpSize, 65_535)) : 512;
    return this.#write(q, question, a, limit);
  }

  #write(q: Query, question: Buffer, a: Answer, limit: number): Buffer {
    const rrs = a.rotations[this.#turn++ % a.rotations.length]!;
    let flags = QR | (q.flags & RD) | a.flags;
    let counts = a.counts;
    let body = rrs;
    if (12 + question.length + rrs.length > limit) {
      // Too big for the client's UDP size: TC, no records but OPT, and the client retries over TCP.
      this.#count(S.DNS_TRUNCATED);
      flags |= TC;
      counts = a.truncated.counts;
      body = a.truncated.rrs;
    }
    const out = Buffer.allocUnsafe(12 + question.length + body.length);
    out.writeUInt16BE(q.id, 0);
    out.writeUInt16BE(flags, 2);
    out.writeUInt16BE(1, 4);
    out.writeUInt16BE(counts[0], 6);
    out.writeUInt16BE(counts[1], 8);
    out.writeUInt16BE(counts[2], 10);
    question.copy(out, 12);
    body.copy(out, 12 + question.length);
    return out;
  }

  #onUdp(sock: UdpSocket, msg: Buffer, address: string, port: number): void {
    const t0 = performance.now();
    let res: Buffer | null;
    try {
      res = this.answer(msg, true);
    } catch {
      return; // never reached by design; a bug must not take the worker down
    }
    if (!res) return;
    const verdict = this.#rrl.check(address, Date.now());
    if (verdict === 'drop') {
      this.#count(S.DNS_RRL_DROPPED);
      return;
    }
    if (verdict === 'slip') {
      this.#count(S.DNS_RRL_SLIPPED);
      // Header and question only, TC set: a real client retries over TCP.
      const qEnd = res.readUInt16BE(4) === 1 ? Math.min(res.length, 12 + questionLength(res)) : 12;
      const slip = Buffer.from(res.subarray(0, qEnd));
      slip.writeUInt16BE(res.readUInt16BE(2) | TC, 2);
      slip.writeUInt16BE(0, 6);
      slip.writeUInt16BE(0, 8);
      slip.writeUInt16BE(0, 10);
      res = slip;
    }
    sock.send(res, port, address);
    // From the datagram's arrival to its answer handed to the kernel, in µs.
    this.#o.latency?.record('dns_answer_us', (performance.now() - t0) * 1000);
  }

  #onTcp(c: Socket): void {
    this.#count(S.DNS_TCP);
    c.setNoDelay(true);
    c.setTimeout(DNS_LIMITS.tcpIdleMs, () => c.destroy());
    c.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len < 12) {
          // Not even a header: nothing sensible to answer on this stream.
          c.destroy();
          return;
        }
        if (buf.length < 2 + len) return;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        let res: Buffer | null = null;
        try {
          res = this.answer(msg, false);
        } catch {
          res = null;
        }
        if (!res) continue;
        const frame = Buffer.allocUnsafe(2 + res.length);
        frame.writeUInt16BE(res.length, 0);
        res.copy(frame, 2);
        c.write(frame);
      }
    });
  }
}

/** Length of the question section of a message with one question (uncompressed name). */
function questionLength(msg: Buffer): number {
  let off = 12;
  while (off < msg.length && msg[off] !== 0) off += 1 + msg[off]!;
  return off + 1 + 4 - 12;
}
