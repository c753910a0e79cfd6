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
 * Icecast-compatible door.
 */
import { get, type ClientRequest } from 'node:http';
import { cpuOf, rssOf } from './proc-stats.ts';
import { pidFrom } from '../harness/process.ts';
import { join } from 'node:path';
import { MOUNT, startStream, type Cluster, type StreamFormat } from './cluster.ts';
import { startNginx } from './redirect.ts';

export interface FanoutResult {
  server: string;
  format: StreamFormat;
  listeners: number;
  connected: number;
  cpuPercent: number;
  cpuPerListenerPct: number;
  rssPerListenerKiB: number;
  atRate: number;
  medianBps: number;
}

const MEASURE_S = Number(process.env.BENCH_FANOUT_SECONDS ?? 10);

function choice<T extends string>(name: string, allowed: readonly T[]): T {
  const v = process.env[name] ?? allowed[0]!;
  if (!(allowed as readonly string[]).includes(v)) throw new Error(`${name}=${v}: one of ${allowed.join(', ')}`);
  return v as T;
}

async function measure(server: string, format: StreamFormat, url: string, n: number, pids: number[]): Promise<FanoutResult> {
  const rss0 = rssOf(pids);
  const counts = new Float64Array(n);
  const reqs: ClientRequest[] = [];
  // Arrive in batches: Icecast 2.4's listen backlog is a compile-time 5; this measures steady state, not a flash crowd.
  for (let i = 0; i < n; i++) {
    const k = i;
    const req = get(url, { agent: false }, (res) => res.on('data', (d: Buffer) => (counts[k]! += d.length)));
    req.on('error', () => undefined);
    reqs.push(req);
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 50));
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && counts.some((c) => c === 0)) await new Promise((r) => setTimeout(r, 250));
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
  const nginx = await startNginx(
    `location / { proxy_pass http://${p.host}:${p.icecastInternalPort}; proxy_buffering off; proxy_http_version 1.1; proxy_read_timeout 1h; }`,
    '/nonexistent', (s) => s === 404,
  );
  const out: FanoutResult[] = [];
  try {
    for (const n of sizes) {
      out.push(await measure(radiodLabel, format, radiodUrl, n, [p.proc.pid, icecastPid]));
      out.push(await measure('Icecast direct', format, `http://${p.host}:${p.icecastInternalPort}${mount}`, n, [icecastPid]));
      out.push(await measure('nginx proxy_pass (1 worker, + Icecast)', format, `${nginx.base}${mount}`, n, [...nginx.pids(), icecastPid]));
    }
  } finally {
    await nginx.stop();
    await stream?.source.stop();
  }
  return out;
}
