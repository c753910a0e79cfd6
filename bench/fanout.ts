/**
 * `fanout`: N listeners of a 128 kbit/s stream through radiod's proxy
 * against the same N on Icecast directly (the node's own Icecast, same
 * source, same run): server CPU per listener, memory per listener, and the
 * share of listeners that kept at least 15 kB/s. The listener client is
 * our own (autocannon is not built for endless streams).
 *
 * BENCH_FANOUT_FORMAT=mp3|ogg (mp3): the stream, MP3 on the cluster's mount
 * or Ogg Vorbis on a mount of its own. BENCH_FANOUT_PORT=http|icecast
 * (http): radiod's listeners go to HTTP_PORT or to ICECAST_PORT, the
 * Icecast-compatible door. BENCH_FANOUT_NGINX=off leaves out nginx
 * (its third of the run's time; it is no part of the ratio).
 *
 * Then what the operators' features cost (opsCost): two more proxy nodes
 * side by side, one with the listener log on and /metrics scraped every
 * second, one with both off; each gets BENCH_OPS_LISTENERS (5000) listeners
 * that connect, stay BENCH_FANOUT_SECONDS and leave, and the radiod's CPU
 * over the whole visit is compared, since the log's work is done when
 * listeners leave, not while they listen.
 */
import { get, type ClientRequest } from 'node:http';
import { cpuOf, rssOf } from './proc-stats.ts';
import { pidFrom } from '../harness/process.ts';
import { join } from 'node:path';
import { MOUNT, ONE_ADDRESS_MANY_CLIENTS, startStream, type Cluster, type StreamFormat } from './cluster.ts';
import { existsSync, readFileSync } from 'node:fs';
import { freePort, waitFor } from '../harness/net.ts';
import { tempDir } from '../harness/process.ts';
import { startRadiod } from '../harness/radiod.ts';
import { startNginx } from './redirect.ts';

export interface FanoutResult {
  server: string;
  format: StreamFormat;
  listeners: number;
  connected: number;
  /** The server's CPU with the stream flowing and none of these listeners yet: what it costs before the first listener. */
  idleCpuPercent: number;
  cpuPercent: number;
  cpuPerListenerPct: number;
  rssPerListenerKiB: number;
  atRate: number;
  medianBps: number;
}

const MEASURE_S = Number(process.env.BENCH_FANOUT_SECONDS ?? 10);
/** Seconds of the server's CPU measured before listeners arrive. */
const IDLE_S = 3;

function choice<T extends string>(name: string, allowed: readonly T[]): T {
  const v = process.env[name] ?? allowed[0]!;
  if (!(allowed as readonly string[]).includes(v)) throw new Error(`${name}=${v}: one of ${allowed.join(', ')}`);
  return v as T;
}

/**
 * N listeners of `url`, each counting the bytes it gets; returns once all
 * have had some (or after 30 s). They arrive in batches: Icecast 2.4's
 * listen backlog is a compile-time 5, and this measures steady state, not a
 * flash crowd.
 */
export async function arrive(url: string, n: number): Promise<{ counts: Float64Array; reqs: ClientRequest[] }> {
  const counts = new Float64Array(n);
  const reqs: ClientRequest[] = [];
  for (let i = 0; i < n; i++) {
    const k = i;
    const req = get(url, { agent: false }, (res) => res.on('data', (d: Buffer) => (counts[k]! += d.length)));
    req.on('error', () => undefined);
    reqs.push(req);
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 50));
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && counts.some((c) => c === 0)) await new Promise((r) => setTimeout(r, 250));
  return { counts, reqs };
}

async function measure(server: string, format: StreamFormat, url: string, n: number, pids: number[]): Promise<FanoutResult> {
  const rss0 = rssOf(pids);
  const idle0 = cpuOf(pids);
  const i0 = Date.now();
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  const idleCpu = cpuOf(pids) - idle0;
  const idleSecs = (Date.now() - i0) / 1000;
  const { counts, reqs } = await arrive(url, n);
  await new Promise((r) => setTimeout(r, 2000));
  const before = Float64Array.from(counts);
  const cpu0 = cpuOf(pids);
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
  const secs = (Date.now() - t0) / 1000;
  const cpu = cpuOf(pids) - cpu0;
  const rss = rssOf(pids) - rss0;
  const rates = Array.from(counts, (c, i) => (c - before[i]!) / secs).sort((a, b) => a - b);
  for (const r of reqs) r.destroy();
  await new Promise((r) => setTimeout(r, 3000));
  return {
    server,
    format,
    listeners: n,
    connected: Array.from(counts).filter((c) => c > 0).length,
    idleCpuPercent: Number(((idleCpu / idleSecs) * 100).toFixed(2)),
    cpuPercent: Number(((cpu / secs) * 100).toFixed(1)),
    cpuPerListenerPct: Number((((cpu / secs) * 100) / n).toFixed(4)),
    rssPerListenerKiB: Number((rss / n / 1024).toFixed(1)),
    atRate: Number((rates.filter((x) => x >= 15_000).length / n).toFixed(3)),
    medianBps: Math.round(rates[n >> 1]!),
  };
}

export async function fanoutBench(cluster: Cluster, sizes: number[]): Promise<FanoutResult[]> {
  const format = choice<StreamFormat>('BENCH_FANOUT_FORMAT', ['mp3', 'ogg']);
  const door = choice('BENCH_FANOUT_PORT', ['http', 'icecast']);
  const p = cluster.proxy;
  const icecastPid = pidFrom(join(p.dataDir, 'icecast.pid'))!;
  const stream = format === 'mp3' ? null : await startStream(cluster.etcd.url, p, '/live.ogg', format);
  const mount = stream?.mount ?? MOUNT;
  const radiodUrl = `http://${p.host}:${door === 'http' ? p.httpPort : p.icecastPort}${mount}`;
  const radiodLabel = `radiod proxy via ${door === 'http' ? 'HTTP_PORT' : 'ICECAST_PORT'} (+ its Icecast)`;
  // nginx as a streaming reverse proxy in front of the same Icecast: one upstream connection per listener.
  const withNginx = process.env.BENCH_FANOUT_NGINX !== 'off';
  const nginx = await startNginx(
    `location / { proxy_pass http://${p.host}:${p.icecastInternalPort}; proxy_buffering off; proxy_http_version 1.1; proxy_read_timeout 1h; }`,
    '/nonexistent', (s) => s === 404,
  );
  const out: FanoutResult[] = [];
  try {
    for (const n of sizes) {
      out.push(await measure(radiodLabel, format, radiodUrl, n, [p.proc.pid, icecastPid]));
      out.push(await measure('Icecast direct', format, `http://${p.host}:${p.icecastInternalPort}${mount}`, n, [icecastPid]));
      if (withNginx) out.push(await measure('nginx proxy_pass (1 worker, + Icecast)', format, `${nginx.base}${mount}`, n, [...nginx.pids(), icecastPid]));
    }
  } finally {
    await nginx.stop();
    await stream?.source.stop();
  }
  return out;
}

export interface OpsResult {
  server: string;
  listeners: number;
  /** radiod's CPU seconds over the visit: connect, BENCH_FANOUT_SECONDS of listening, leave, the log written. */
  cpuSeconds: number;
  /** Listener-log lines written for the visit. */
  logLines: number;
  /** /metrics answers taken during it. */
  scrapes: number;
  /** Bytes of the last /metrics answer. */
  metricsBytes: number;
}

/** N listeners visit `url` (connect, stay, leave); `scrape` is asked every second meanwhile. */
async function visit(server: string, url: string, n: number, pid: number, log: string | null, scrape: string | null): Promise<OpsResult> {
  const lines = (): number => (log !== null && existsSync(log) ? readFileSync(log, 'latin1').split('\n').length - 1 : 0);
  const lines0 = lines();
  const cpu0 = cpuOf([pid]);
  const { reqs } = await arrive(url, n);
  let scrapes = 0;
  let metricsBytes = 0;
  const until = Date.now() + MEASURE_S * 1000;
  while (Date.now() < until) {
    if (scrape !== null) {
      const body = await (await fetch(scrape)).text();
      metricsBytes = body.length;
      scrapes++;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  for (const r of reqs) r.destroy();
  // The workers hand their lines over once a second; the visit ends when the log has them all.
  if (log !== null) await waitFor(() => lines() - lines0 >= n, 20_000, `${n} lines in the listener log`, 250).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 2000));
  return { server, listeners: n, cpuSeconds: Number((cpuOf([pid]) - cpu0).toFixed(2)), logLines: lines() - lines0, scrapes, metricsBytes };
}

/** The listener log and /metrics, on and off, on two nodes of the same cluster in the same run. */
export async function opsCost(cluster: Cluster): Promise<OpsResult[]> {
  const n = Number(process.env.BENCH_OPS_LISTENERS ?? 5000);
  const workers = Number(process.env.BENCH_WORKERS ?? 2);
  const host = { on: '127.0.0.4', off: '127.0.0.5' };
  const log = `${tempDir('ops-log')}/access.log`;
  const metricsPort = await freePort(host.on);
  const on = await startRadiod({ name: 'bench-ops-on', host: host.on, etcd: cluster.etcd.url, workers, leaseTtl: 5, metricsAddr: `${host.on}:${metricsPort}`, env: { ACCESS_LOG: log }, extraArgs: ONE_ADDRESS_MANY_CLIENTS });
  const off = await startRadiod({ name: 'bench-ops-off', host: host.off, etcd: cluster.etcd.url, workers, leaseTtl: 5, env: { ACCESS_LOG: '' }, extraArgs: ONE_ADDRESS_MANY_CLIENTS });
  const out: OpsResult[] = [];
  try {
    for (const node of [on, off]) await waitFor(async () => (await node.health()).body.icecast === 'ready', 20_000, `${node.name} ready`);
    // Alternate, so neither always runs on a machine still busy with the other's leavers.
    out.push(await visit('radiod, listener log off, no /metrics', `http://${off.host}:${off.httpPort}${MOUNT}`, n, off.proc.pid, null, null));
    out.push(await visit('radiod, listener log on, /metrics every 1 s', `http://${on.host}:${on.httpPort}${MOUNT}`, n, on.proc.pid, log, `http://${host.on}:${metricsPort}/metrics`));
    out.push(await visit('radiod, listener log off, no /metrics', `http://${off.host}:${off.httpPort}${MOUNT}`, n, off.proc.pid, null, null));
    out.push(await visit('radiod, listener log on, /metrics every 1 s', `http://${on.host}:${on.httpPort}${MOUNT}`, n, on.proc.pid, log, `http://${host.on}:${metricsPort}/metrics`));
  } finally {
    await on.stop();
    await off.stop();
  }
  return out;
}
