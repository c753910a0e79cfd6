/**
 * `micro`: the hot functions one at a time, in this process, so that a
 * regression shows in seconds before the macro benchmarks run: the
 * listener routing decision (remembered, and made afresh), the DNS answer
 * for a query (parse, cache lookup, the message written into a buffer),
 * the snapshot read (unchanged, and decoded after a publish), and the
 * hub's append of a chunk sent to its listeners.
 *
 * Each figure is nanoseconds per operation, the median of several rounds,
 * and the same figure as a multiple of a yardstick timed in the same run (a
 * Map lookup of a short string key): the multiple is what to compare across
 * machines and runs, as the macro benchmarks compare against a peer.
 */
import dnsPacket from 'dns-packet';
import { SnapshotReader } from '../src/ipc/snapshot-reader.ts';
import { SnapshotWriter } from '../src/ipc/snapshot-writer.ts';
import { NO_STREAM_INFO, type SnapshotInput } from '../src/ipc/snapshot.ts';
import { WorkerStats, statsBuffer } from '../src/ipc/worker-stats.ts';
import { LocalCounts } from '../src/dns/local-counts.ts';
import { writePlan } from '../src/dns/plan.ts';
import { Responder } from '../src/dns/responder.ts';
import { ListenRouter, routeListener } from '../src/proxy/listen-route.ts';
import { Fanout } from '../src/proxy/fanout.ts';
import type { Sink } from '../src/proxy/sink.ts';

export interface MicroResult {
  name: string;
  nsPerOp: number;
  /** nsPerOp over the yardstick's. */
  yardsticks: number;
}

const ROUNDS = 7;

/** Median ns per call of `fn` over ROUNDS rounds of `n` calls, after a warm-up round. */
function time(n: number, fn: () => void): number {
  for (let i = 0; i < n; i++) fn();
  const per: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    per.push(Number(process.hrtime.bigint() - t0) / n);
  }
  per.sort((a, b) => a - b);
  return per[ROUNDS >> 1]!;
}

/** Three nodes, this one (`a`) full so that a decision is a weighted choice, and 20 live mounts. */
function clusterInput(): SnapshotInput {
  const node = (name: string, i: number, listeners: number) => ({
    name, addresses: [`192.0.2.${i + 1}`], httpPort: 80, dnsPort: 53, icecastPort: 8000, icecastInternalPort: 8001, httpsPort: 0,
    alive: true, icecastReady: true, etcdHealthy: true, proxy: true,
    listeners, bandwidthKbps: 0, maxListeners: 1000, bandwidthLimitKbps: 0,
  });
  const nodes = [node('a', 0, 1000), node('b', 1, 200), node('c', 2, 500)];
  const mounts = Array.from({ length: 20 }, (_, j) => ({
    path: `/m${j}.mp3`, relay: false, transcoded: false, fallbackPath: null, sourceConnected: true, listeners: 10,
    readyOn: ['a', 'b', 'c'], info: { ...NO_STREAM_INFO, title: `title ${j}`, bitrate: 128 }, credential: '', kickedAt: 0,
  }));
  return { etcdConnected: true, stateLoaded: true, draining: false, outOfService: false, etcdSeenAt: 0, self: 'a', master: 'a', zoneSerial: 1, nodes, mounts };
}

/** A listener's connection that takes every write. */
function nullSink(): Sink {
  return { write: () => true, close() {}, onDrain: null, onClose: null, closed: false, bytes: 0, ownableFd: () => -1, handedOver: () => { throw new Error('not a socket'); } };
}

export function microBench(): MicroResult[] {
  const out: { name: string; ns: number }[] = [];
  const keys = Array.from({ length: 16 }, (_, i) => `/mount-${i}.mp3`);
  const map = new Map(keys.map((k, i) => [k, i]));
  let sink = 0;
  let k = 0;
  const yard = time(2_000_000, () => {
    sink += map.get(keys[k++ & 15]!)!;
  });

  const input = clusterInput();
  const writer = new SnapshotWriter({ maxNodes: 64, maxMounts: 1024, stringBytes: 1 << 20 });
  const reader = new SnapshotReader(writer.sab);
  writer.publish(input);
  const snap = reader.current();

  const router = new ListenRouter({ nodeName: 'b', proxy: true, port: 'http' });
  const paths = input.mounts.slice(0, 16).map((m) => m.path);
  out.push({ name: 'routing, remembered (ListenRouter.route)', ns: time(1_000_000, () => {
    sink += router.route(snap, paths[k++ & 15]!).kind.length;
  }) });
  out.push({ name: 'routing decision, this node full (routeListener)', ns: time(300_000, () => {
    sink += routeListener(snap, '/m7.mp3', { nodeName: 'a', proxy: false, port: 'http' }).kind.length;
  }) });

  const counts = new LocalCounts(new WorkerStats(statsBuffer(1, 1024), 0, 1024), 60_000);
  const responder = new Responder(reader, { domain: 'radio.test', nameservers: ['a'], ttl: 5, apexTtl: 3600, maxRecords: 8 }, counts);
  const query = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'stream.radio.test' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer] });
  const outBuf = Buffer.allocUnsafe(65_536);
  out.push({ name: 'DNS answer: parse, cache lookup, write (Responder.plan + writePlan)', ns: time(500_000, () => {
    const p = responder.plan(query, true)!;
    sink += writePlan(p, outBuf, 0);
  }) });
  counts.close();

  out.push({ name: 'snapshot read, unchanged (SnapshotReader.current)', ns: time(2_000_000, () => {
    sink += reader.current().seq;
  }) });
  out.push({ name: 'snapshot publish (SnapshotWriter.publish, 3 nodes, 20 mounts)', ns: time(20_000, () => {
    sink += writer.publish(input).seq;
  }) });
  out.push({ name: 'snapshot publish and decode (publish + current)', ns: time(20_000, () => {
    writer.publish(input);
    sink += reader.current().mounts.length;
  }) });

  for (const listeners of [100, 1000]) {
    const fanout = new Fanout(512 * 1024, (n) => {
      sink += n;
    }, () => undefined);
    for (let i = 0; i < listeners; i++) fanout.add(nullSink(), null, false, 0, []);
    const chunk = Buffer.alloc(4096, 1);
    out.push({ name: `hub append and send, per listener (Fanout.append, ${listeners} listeners)`, ns: time(listeners === 100 ? 100_000 : 10_000, () => fanout.append(chunk, false)) / listeners });
    fanout.close();
  }
  if (sink === 0.5) process.stderr.write('');
  return [{ name: 'yardstick: Map.get of a short string', ns: yard }, ...out].map((r) => ({
    name: r.name, nsPerOp: Math.round(r.ns * 10) / 10, yardsticks: Math.round((r.ns / yard) * 10) / 10,
  }));
}
