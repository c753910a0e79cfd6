/**
 * The authoritative DNS server of one worker thread: UDP and TCP on
 * DNS_PORT for every bind address, with `reusePort` so that every worker
 * serves (Node 22). UDP goes through batched sockets (recvmmsg/sendmmsg,
 * udp-batch.ts) when the addon is built, node:dgram otherwise. Answers come
 * from AnswerCache, rebuilt only when the zone serial in the snapshot
 * moves, and are written straight into the batch's send buffer. Malformed
 * input costs at most one FORMERR; nothing a client sends can throw out of
 * here.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import type { LatencyRecorder } from '../ipc/latency.ts';
import { ROW_HEAD, S, type WorkerStats } from '../ipc/worker-stats.ts';
import { AnswerCache, type Answer } from './answers.ts';
import { Rrl, prefixKey } from './rrl.ts';
import { FrameReader } from './tcp-frames.ts';
import { UdpBatch, batchUnavailable, senderKey } from './udp-batch.ts';
import { CLASS_IN, QR, RCODE, RD, TC, parseQuery, type Query } from './wire.ts';
import { buildZone, type ZoneConfig } from './zone.ts';

export const DNS_LIMITS = {
  /** A TCP connection with no query under way is closed after this long (counted from its last answer, or from its start). */
  tcpIdleMs: 10_000,
  /**
   * A query over TCP must arrive whole within this long of its first byte, however slowly it trickles:
   * a timer restarted by every byte would let one byte every few seconds hold a connection slot forever.
   */
  tcpQueryMs: 3000,
  /** TCP connections per worker. */
  tcpConnections: 1000,
  /** Answers waiting for a TCP client that does not read them: past this, it is let go. */
  tcpQueueBytes: 64 * 1024,
  /** A query is one question and an OPT record: a longer frame is not a query. */
  tcpQueryBytes: 4096,
  /**
   * Stream buffer of a TCP connection, each way. Node's default (64 KiB) times a thousand connections
   * that send queries and do not read the answers is 64 MB; this much holds many answers.
   */
  tcpBufferBytes: 8192,
  /**
   * What paused TCP connections may hold in all, per worker (their unread queries, unsent answers and
   * a read in flight). A connection is paused when its client does not read the answers, or when it
   * has had its turn while more of its queries wait; past this budget it is let go instead.
   */
  tcpPausedBytes: 4 * 1024 * 1024,
  /**
   * Answers node:dgram holds for a UDP socket the kernel does not take them from: past this they are
   * dropped, as the kernel drops datagrams, instead of queueing in memory without bound.
   */
  udpSendQueueBytes: 1024 * 1024,
} as const;

export interface DnsOptions {
  reader: SnapshotReader;
  stats: WorkerStats;
  zone: ZoneConfig;
  /** Responses per second per client prefix over UDP; 0 = unlimited. */
  rrl: number;
  latency?: LatencyRecorder;
}

const EMPTY = Buffer.alloc(0);
const NO_COUNTS = [0, 0, 0] as const;

/** A bare header answer (FORMERR, NOTIMP, REFUSED): no records, the question when there is one. */
function headerOnly(id: number, flags: number, question: Buffer): Plan {
  return { id, flags, counts: NO_COUNTS, question, body: EMPTY, size: 12 + question.length };
}

/** Writes the message `p` describes at `off`; returns its length. */
function writePlan(p: Plan, out: Buffer, off: number): number {
  out.writeUInt16BE(p.id, off);
  out.writeUInt16BE(p.flags, off + 2);
  out.writeUInt16BE(p.question.length > 0 ? 1 : 0, off + 4);
  out.writeUInt16BE(p.counts[0], off + 6);
  out.writeUInt16BE(p.counts[1], off + 8);
  out.writeUInt16BE(p.counts[2], off + 10);
  p.question.copy(out, off + 12);
  p.body.copy(out, off + 12 + p.question.length);
  return p.size;
}

/**
 * Turns the answer at `off` into an RRL slip in place: header and question
 * only, TC set, so a real client behind a spoofed flood retries over TCP.
 */
function slipInPlace(out: Buffer, off: number, questionBytes: number): number {
  out.writeUInt16BE(out.readUInt16BE(off + 2) | TC, off + 2);
  out.writeUInt16BE(0, off + 6);
  out.writeUInt16BE(0, off + 8);
  out.writeUInt16BE(0, off + 10);
  return 12 + questionBytes;
}

/** What a query gets: a ready message (header-only answers) or the parts of a cached answer. */
interface Plan {
  id: number;
  flags: number;
  counts: readonly [number, number, number];
  question: Buffer;
  body: Buffer;
  size: number;
}

/**
 * Queries one TCP connection gets answered before the others and UDP have their turn: a read brings up
 * to 64 KiB (some 1500 queries), and a thousand connections' reads answered in one go kept UDP waiting
 * for seconds.
 */
const TCP_TURN = 256;

/** Room kept free in a batch's send buffer: more than the largest UDP answer. */
const OUT_RESERVE = 66_000;

export class DnsServer {
  readonly #o: DnsOptions;
  readonly #cache: AnswerCache;
  readonly #rrl: Rrl;
  readonly #udp: (UdpSocket | UdpBatch)[] = [];
  /** How UDP is served: 'batched' (recvmmsg/sendmmsg) or 'dgram (reason)'. */
  readonly udpMode: string;
  readonly #tcp: Server[] = [];
  /** Bytes reckoned held by paused TCP connections (DNS_LIMITS.tcpPausedBytes). */
  #tcpPaused = 0;
  #seq = -1;
  #serial = -1;
  #turn = 0;
  /** Counters by shared-row word, kept locally and added to the shared row twice a second: no atomics per query. */
  readonly #counts = new Float64Array(ROW_HEAD);
  readonly #flush: NodeJS.Timeout;

  constructor(o: DnsOptions) {
    this.#o = o;
    this.#flush = setInterval(() => this.#flushCounts(), 500);
    this.#flush.unref();
    this.#rrl = new Rrl(o.rrl);
    this.#cache = new AnswerCache(buildZone(o.reader.current(), o.zone, 0), o.zone);
    const why = batchUnavailable();
    this.udpMode = why === null ? 'batched' : `dgram (${why})`;
  }

  async listen(addrs: string[], port: number): Promise<void> {
    for (const host of addrs) {
      if (this.udpMode === 'batched') this.#udp.push(new UdpBatch(host, port, (b, n) => this.#onBatch(b, n)));
      else await new Promise<void>((resolve, reject) => {
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
        const server = createServer({ highWaterMark: DNS_LIMITS.tcpBufferBytes }, (c) => this.#onTcp(c));
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
    this.#counts[word]!++;
  }

  #flushCounts(): void {
    const c = this.#counts;
    for (let word = 0; word < c.length; word++) {
      if (c[word] !== 0) {
        this.#o.stats.add(word, c[word]!);
        c[word] = 0;
      }
    }
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

  /** The response to `msg`, or null to stay silent: over UDP (`udp`, the client's size applies) or TCP. */
  answer(msg: Buffer, udp: boolean): Buffer | null {
    const p = this.#plan(msg, udp);
    if (p === null) return null;
    const out = Buffer.allocUnsafe(p.size);
    writePlan(p, out, 0);
    return out;
  }

  /** What to answer `msg` with; null to stay silent. */
  #plan(msg: Buffer, udp: boolean): Plan | null {
    this.#count(S.DNS_QUERIES);
    const parsed = parseQuery(msg);
    if (!parsed.ok) {
      if (parsed.id === null) return null;
      this.#count(S.DNS_FORMERR);
      return headerOnly(parsed.id, QR | RCODE.FORMERR, EMPTY);
    }
    const q = parsed.q;
    const question = msg.subarray(12, q.questionEnd);
    if (q.opcode !== 0) {
      this.#count(S.DNS_NOTIMP);
      return headerOnly(q.id, QR | (q.opcode << 11) | RCODE.NOTIMP, EMPTY);
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
    return this.#fit(q, question, a, limit);
  }

  /** The next rotation of `a`, or its truncated form when it exceeds the client's size. */
  #fit(q: Query, question: Buffer, a: Answer, limit: number): Plan {
    const rrs = a.rotations[this.#turn++ % a.rotations.length]!;
    const flags = QR | (q.flags & RD) | a.flags;
    if (12 + question.length + rrs.length <= limit) {
      return { id: q.id, flags, counts: a.counts, question, body: rrs, size: 12 + question.length + rrs.length };
    }
    // Too big for the client's UDP size: TC, no records but OPT, and the client retries over TCP.
    this.#count(S.DNS_TRUNCATED);
    const t = a.truncated;
    return { id: q.id, flags: flags | TC, counts: t.counts, question, body: t.rrs, size: 12 + question.length + t.rrs.length };
  }

  /**
   * A batch of datagrams from a batched socket: each answer is written into
   * the batch's send buffer, rate limiting decides which go out, and one
   * send hands them all to the kernel.
   */
  #onBatch(b: UdpBatch, n: number): void {
    const t0 = performance.now();
    const now = Date.now();
    const out = b.out;
    const meta = b.meta;
    let off = 0;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const len = b.lens[i]!;
      if (len === 0) continue; // larger than any query radiod answers
      let p: Plan | null;
      try {
        p = this.#plan(b.in.subarray(i * b.slot, i * b.slot + len), true);
      } catch {
        continue; // never reached by design; a bug must not take the worker down
      }
      if (p === null) continue;
      const verdict = this.#rrl.checkKey(senderKey(b.addrs, i), now);
      if (verdict === 'drop') {
        this.#count(S.DNS_RRL_DROPPED);
        continue;
      }
      if (out.length - off < OUT_RESERVE) {
        b.send(k);
        off = 0;
        k = 0;
      }
      let size = writePlan(p, out, off);
      if (verdict === 'slip') {
        this.#count(S.DNS_RRL_SLIPPED);
        size = slipInPlace(out, off, p.question.length);
      }
      meta[k * 3] = off;
      meta[k * 3 + 1] = size;
      meta[k * 3 + 2] = i;
      k++;
      off += size;
    }
    b.send(k);
    const us = (performance.now() - t0) * 1000;
    // From the batch's arrival to its answers handed to the kernel, for each answer.
    if (k > 0) this.#o.latency?.record('dns_answer_us', us, k);
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
    if (sock.getSendQueueSize() > DNS_LIMITS.udpSendQueueBytes) return;
    const verdict = this.#rrl.checkKey(prefixKey(address), Date.now());
    if (verdict === 'drop') {
      this.#count(S.DNS_RRL_DROPPED);
      return;
    }
    if (verdict === 'slip') {
      this.#count(S.DNS_RRL_SLIPPED);
      res = res.subarray(0, slipInPlace(res, 0, res.readUInt16BE(4) === 1 ? questionLength(res) : 0));
    }
    sock.send(res, port, address);
    // From the datagram's arrival to its answer handed to the kernel, in µs.
    this.#o.latency?.record('dns_answer_us', (performance.now() - t0) * 1000);
  }

  #onTcp(c: Socket): void {
    this.#count(S.DNS_TCP);
    c.setNoDelay(true);
    c.on('error', () => undefined);
    const frames = new FrameReader(12, DNS_LIMITS.tcpQueryBytes);
    // One deadline at a time, set when a query starts (its first byte) and when the last one is
    // answered, never moved by bytes arriving: a trickle cannot hold the connection.
    let timer: NodeJS.Timeout | null = null;
    const deadline = (ms: number): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => c.destroy(), ms);
      timer.unref();
    };
    deadline(DNS_LIMITS.tcpIdleMs);
    // A connection stops reading (paused) in two cases: its client does not read the answers (until
    // they drain; past a small queue it is let go), and it has had its turn (TCP_TURN queries) while
    // more wait, so that other connections and UDP are served in between. What a paused connection
    // holds counts against the worker's budget until it reads again or closes; past the budget it is
    // let go instead: a thousand clients pipelining without reading cannot hold a thousand buffers.
    let held = 0;
    let draining = false;
    let yielded = false;
    const release = (): void => {
      this.#tcpPaused -= held;
      held = 0;
    };
    c.once('close', () => {
      if (timer) clearTimeout(timer);
      release();
    });
    const pause = (): boolean => {
      if (held === 0) {
        // One more read may land in the stream's buffer after the pause: reckon it at its largest.
        const bytes = frames.retained + c.writableLength + c.readableLength + 65_536;
        if (this.#tcpPaused + bytes > DNS_LIMITS.tcpPausedBytes) {
          c.destroy();
          return false;
        }
        held = bytes;
        this.#tcpPaused += bytes;
      }
      c.pause();
      return true;
    };
    const again = (): void => {
      if (c.destroyed || draining || yielded) return;
      release();
      c.resume();
      serve();
    };
    c.on('drain', () => {
      if (!draining) return;
      draining = false;
      again();
    });
    /** Answers the complete queries received, up to a turn's worth; returns how many it took. */
    const turn = (): number => {
      let n = 0;
      while (!draining && !yielded) {
        if (n === TCP_TURN && frames.buffered > 0) {
          if (pause()) {
            yielded = true;
            setImmediate(() => {
              yielded = false;
              again();
            });
          }
          return n;
        }
        const msg = frames.next();
        if (msg === 'incomplete') return n;
        if (msg === 'not a query') {
          // Too short for a header or longer than any query: nothing sensible to answer.
          c.destroy();
          return n;
        }
        n++;
        let p: Plan | null = null;
        try {
          p = this.#plan(msg, false);
        } catch {
          p = null; // never reached by design; a bug must not take the worker down
        }
        if (!p) continue;
        const frame = Buffer.allocUnsafe(2 + p.size);
        frame.writeUInt16BE(p.size, 0);
        writePlan(p, frame, 2);
        if (!c.write(frame)) {
          if (c.writableLength > DNS_LIMITS.tcpQueueBytes || !pause()) {
            c.destroy();
            return n;
          }
          draining = true;
        }
      }
      return n;
    };
    const serve = (): void => {
      // A query answered: the next one is under way if its first bytes are here, else the connection idles.
      if (turn() > 0 && !c.destroyed) deadline(frames.buffered > 0 ? DNS_LIMITS.tcpQueryMs : DNS_LIMITS.tcpIdleMs);
    };
    c.on('data', (d: Buffer) => {
      if (frames.buffered === 0 && d.length > 0) deadline(DNS_LIMITS.tcpQueryMs);
      frames.push(d);
      serve();
    });
  }
}

/** Length of the question section of a message with one question (uncompressed name). */
function questionLength(msg: Buffer): number {
  let off = 12;
  while (off < msg.length && msg[off] !== 0) off += 1 + msg[off]!;
  return off + 1 + 4 - 12;
}
