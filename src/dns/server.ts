/**
 * The authoritative DNS server of one worker thread: UDP and TCP on
 * DNS_PORT for every bind address, with `reusePort` so that every worker
 * serves (Node 22). UDP goes through batched sockets (recvmmsg/sendmmsg,
 * udp-batch.ts) when the addon is built, node:dgram otherwise
 * (udp-answer.ts); TCP under its own bounds (tcp-answer.ts). Both ask one
 * Responder, and count into one LocalCounts. Nothing a client sends can
 * throw out of here.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import type { LatencyRecorder } from '../ipc/latency.ts';
import type { WorkerStats } from '../ipc/worker-stats.ts';
import { DNS_LIMITS } from './limits.ts';
import { LocalCounts } from './local-counts.ts';
import { Responder } from './responder.ts';
import { RRL_ENTRIES, RRL_SLIP, Rrl } from './rrl.ts';
import { serveTcp, type PausedBudget } from './tcp-answer.ts';
import { BatchContext, UdpBatch, batchUnavailable, nativeAnswers } from './udp-batch.ts';
import { answerBatch, answerDatagram, type UdpAnswerer } from './udp-answer.ts';
import type { ZoneConfig } from './zone.ts';

export interface DnsOptions {
  reader: SnapshotReader;
  stats: WorkerStats;
  zone: ZoneConfig;
  /** Responses per second per client prefix over UDP; 0 = unlimited. */
  rrl: number;
  latency?: LatencyRecorder;
}

export class DnsServer {
  readonly #counts: LocalCounts;
  readonly #responder: Responder;
  readonly #udpAnswer: UdpAnswerer;
  readonly #paused: PausedBudget = { bytes: 0 };
  readonly #udp: (UdpSocket | UdpBatch)[] = [];
  /** The addon's state shared by this server's batched sockets; null with node:dgram. */
  readonly #batch: BatchContext | null;
  /** How UDP is served: 'batched' (recvmmsg/sendmmsg) or 'dgram (reason)'. */
  readonly udpMode: string;
  readonly #tcp: Server[] = [];

  constructor(o: DnsOptions) {
    const why = batchUnavailable();
    this.udpMode = why === null ? 'batched' : `dgram (${why})`;
    this.#batch = why === null ? new BatchContext(o.reader.seqSlot(), o.rrl, RRL_SLIP, RRL_ENTRIES, nativeAnswers()) : null;
    this.#counts = new LocalCounts(o.stats, 500, () => this.#batch?.drain(this.#counts, o.latency));
    this.#responder = new Responder(o.reader, o.zone, this.#counts);
    this.#udpAnswer = { responder: this.#responder, rrl: new Rrl(o.rrl), counts: this.#counts, ...(o.latency ? { latency: o.latency } : {}) };
  }

  async listen(addrs: string[], port: number): Promise<void> {
    for (const host of addrs) {
      if (this.#batch) this.#udp.push(new UdpBatch(host, port, this.#batch, (b, n) => answerBatch(this.#udpAnswer, b, n)));
      else await new Promise<void>((resolve, reject) => {
        const sock = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', reusePort: true });
        sock.once('error', reject);
        sock.on('message', (msg, rinfo) => answerDatagram(this.#udpAnswer, sock, msg, rinfo.address, rinfo.port));
        sock.bind({ address: host, port }, () => {
          sock.off('error', reject);
          sock.on('error', () => undefined);
          this.#udp.push(sock);
          resolve();
        });
      });
      await new Promise<void>((resolve, reject) => {
        const server = createServer({ highWaterMark: DNS_LIMITS.tcpBufferBytes }, (c) => serveTcp(c, this.#responder, this.#counts, this.#paused));
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

  close(): void {
    this.#counts.close();
    for (const s of this.#udp.splice(0)) s.close();
    for (const s of this.#tcp.splice(0)) s.close();
  }
}
