/**
 * `redirect`: requests per second and per CPU-second of the server for a
 * listener redirect, radiod in redirect mode (the whole routing and
 * balancing decision) against nginx answering `return 302`, with the same
 * autocannon load in the same run, at equal threads (one worker each, then
 * two) and equal work: neither logs, then both write an access log line per
 * request (radiod's listener log, nginx's combined log). Each server's
 * answer is checked before it is measured.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { freePort, waitFor } from '../harness/net.ts';
import { httpGet } from '../harness/net.ts';
import { run, tempDir } from '../harness/process.ts';
import { cpuOf, family } from './proc-stats.ts';
import { MOUNT, ONE_ADDRESS_MANY_CLIENTS, type Cluster } from './cluster.ts';
import { startRadiod, type Radiod } from '../harness/radiod.ts';

export interface LoadResult {
  server: string;
  requests: number;
  seconds: number;
  rps: number;
  cpuSeconds: number;
  perCpuSecond: number;
  p50ms: number;
  p99ms: number;
  non2xx3xx: number;
}

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100);
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
/**
 * Seconds of the same load before the measured window, not counted: a
 * radiod just started is still compiling its JavaScript (V8's optimising
 * compiler ran on a thread of its own for about 5% of the first seconds),
 * which a server that runs for days pays once.
 */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);

export async function load(server: string, url: string, pids: number[]): Promise<LoadResult> {
  if (WARMUP > 0) await autocannon({ url, connections: CONNECTIONS, duration: WARMUP, pipelining: 1 });
  const cpu0 = cpuOf(pids);
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, pipelining: 1 });
  const cpu = cpuOf(pids) - cpu0;
  const requests = r.requests.total;
  return {
    server,
    requests,
    seconds: r.duration,
    rps: Math.round(requests / r.duration),
    cpuSeconds: Number(cpu.toFixed(2)),
    perCpuSecond: Math.round(requests / cpu),
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    non2xx3xx: r.non2xx - r['3xx'],
  };
}

/**
 * A private nginx with one worker on a free port of 127.0.0.1; `server` is
 * the body of its server block (after `listen`). Stopped by its PID.
 */
export interface NginxOptions {
  /** worker_processes; 1 unless given. */
  workers?: number;
  /** An access log in the combined format under its directory; off unless set. */
  accessLog?: boolean;
}

export async function startNginx(server: string, check: string, ok: (status: number) => boolean, o: NginxOptions = {}): Promise<{ base: string; dir: string; pids: () => number[]; stop: () => Promise<void> }> {
  const dir = tempDir('nginx');
  const port = await freePort();
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, `worker_processes ${o.workers ?? 1};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
worker_rlimit_nofile 65536;
events { worker_connections 65536; }
http {
  access_log ${o.accessLog ? `${dir}/access.log combined` : 'off'};
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  server { listen 127.0.0.1:${port} reuseport backlog=65535; ${server.replaceAll('DIR', dir)} }
}
`);
  const p = run('nginx', ['-c', conf, '-p', dir]);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => ok((await httpGet(`${base}${check}`)).status), 10_000, 'nginx');
  return { base, dir, pids: () => family(p.pid), stop: async () => void (await p.kill('SIGTERM')) };
}

export async function startNginx302(location: string, o: NginxOptions = {}): Promise<{ url: string; pids: () => number[]; stop: () => Promise<void> }> {
  const n = await startNginx(`location / { return 302 ${location}; }`, MOUNT, (s) => s === 302, o);
  return { url: `${n.base}${MOUNT}`, pids: n.pids, stop: n.stop };
}

/** A radiod in redirect mode beside the cluster's, with its own workers and listener log. */
async function redirector(cluster: Cluster, name: string, host: string, workers: number, log: boolean): Promise<Radiod> {
  const node = await startRadiod({
    name, host, etcd: cluster.etcd.url, workers, leaseTtl: 5,
    extraArgs: ['--enable-icecast-proxy', 'false', ...ONE_ADDRESS_MANY_CLIENTS, ...(log ? [] : ['--access-log', ''])],
  });
  const url = `http://${node.host}:${node.httpPort}${MOUNT}`;
  await waitFor(async () => (await httpGet(url)).status === 302, 20_000, `redirector ${name}`);
  return node;
}

export async function redirectBench(cluster: Cluster): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  const pairs: { threads: number; log: boolean }[] = [{ threads: 1, log: false }, { threads: 2, log: false }, { threads: 1, log: true }];
  for (const [i, pair] of pairs.entries()) {
    const node = await redirector(cluster, `bench-redirect-${i}`, `127.0.0.${6 + i}`, pair.threads, pair.log);
    const url = `http://${node.host}:${node.httpPort}${MOUNT}`;
    const check = await httpGet(url);
    if (check.status !== 302 || !String(check.headers.location).endsWith(MOUNT)) throw new Error(`radiod does not redirect: ${check.status}`);
    const nginx = await startNginx302(String(check.headers.location), { workers: pair.threads, accessLog: pair.log });
    const what = `${pair.threads} worker${pair.threads > 1 ? 's' : ''}, ${pair.log ? 'access log on' : 'no log'}`;
    try {
      results.push(await load(`radiod redirect mode (${what})`, url, [node.proc.pid]));
      results.push(await load(`nginx return 302 (${what})`, nginx.url, nginx.pids()));
    } finally {
      await nginx.stop();
      await node.stop();
    }
  }
  return results;
}
