/**
 * `dns`: dnsperf against radiod's DNS (rate limiting on, at a rate this
 * single load generator does not reach) and against NSD serving the same
 * records from a zone file, in the same run: queries per second and per
 * CPU-second of the server. Compared at equal threads: radiod with one
 * worker against NSD with one server process, and two against two (two
 * sockets share the load, so each batch is smaller). Each server's answer
 * is checked with dig first.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from '../harness/net.ts';
import { run, tempDir } from '../harness/process.ts';
import { cpuOf, family } from './proc-stats.ts';
import type { Cluster } from './cluster.ts';

const exec = promisify(execFile);
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
/** Seconds of the same queries before the measured window, as in redirect.ts: radiod's JavaScript compiles meanwhile. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);

export interface DnsResult {
  server: string;
  /** Worker threads (radiod) or server processes (NSD) answering. */
  threads: number;
  qps: number;
  cpuSeconds: number;
  perCpuSecond: number;
  lost: string;
}

async function digA(host: string, port: number): Promise<string[]> {
  const { stdout } = await exec('dig', [`@${host}`, '-p', String(port), '+short', '+norec', 'stream.radio.test', 'A']);
  return stdout.trim().split('\n').filter(Boolean).sort();
}

async function dnsperf(server: string, threads: number, host: string, port: number, pids: number[]): Promise<DnsResult> {
  const dir = tempDir('dnsperf');
  const queries = join(dir, 'queries');
  writeFileSync(queries, 'stream.radio.test A\nradio.test A\nstream.radio.test A\nnope.radio.test A\n');
  if (WARMUP > 0) await exec('dnsperf', ['-s', host, '-p', String(port), '-d', queries, '-c', '10', '-l', String(WARMUP), '-q', '200'], { maxBuffer: 1 << 20 });
  const cpu0 = cpuOf(pids);
  const { stdout } = await exec('dnsperf', ['-s', host, '-p', String(port), '-d', queries, '-c', '10', '-l', String(DURATION), '-q', '200'], { maxBuffer: 1 << 20 });
  const cpu = cpuOf(pids) - cpu0;
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const completed = Number(/Queries completed:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  return {
    server,
    threads,
    qps: Math.round(qps),
    cpuSeconds: Number(cpu.toFixed(2)),
    perCpuSecond: Math.round(completed / cpu),
    lost: /Queries lost:\s+(\d+ \([\d.]+%\))/.exec(stdout)?.[1] ?? '?',
  };
}

async function startNsd(addresses: string[], servers: number): Promise<{ host: string; port: number; pids: () => number[]; stop: () => Promise<void> }> {
  const dir = tempDir('nsd');
  const host = '127.0.0.20';
  const port = await freePort(host);
  const records = addresses.map((a) => `stream IN A ${a}\n@ IN A ${a}`).join('\n');
  writeFileSync(join(dir, 'radio.test.zone'), `$ORIGIN radio.test.
$TTL 5
@ 3600 IN SOA a.radio.test. hostmaster.radio.test. 1 3600 600 86400 5
@ 3600 IN NS a.radio.test.
a IN A 127.0.0.2
${records}
`);
  writeFileSync(join(dir, 'nsd.conf'), `server:
  ip-address: ${host}@${port}
  server-count: ${servers}
  username: ""
  chroot: ""
  zonesdir: "${dir}"
  database: ""
  pidfile: "${dir}/nsd.pid"
  xfrdfile: "${dir}/xfrd.state"
  zonelistfile: "${dir}/zone.list"
  logfile: "${dir}/nsd.log"
  rrl-ratelimit: 0
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: radio.test
  zonefile: radio.test.zone
`);
  const p = run('nsd', ['-d', '-c', join(dir, 'nsd.conf')]);
  await waitFor(async () => (await digA(host, port)).length === addresses.length, 15_000, 'NSD');
  return { host, port, pids: () => family(p.pid), stop: async () => void (await p.kill('SIGTERM')) };
}

export async function dnsBench(cluster: Cluster): Promise<DnsResult[]> {
  const out: DnsResult[] = [];
  // The redirect-mode node runs one worker, the proxy node BENCH_WORKERS (2).
  for (const n of [cluster.redirector, cluster.proxy]) {
    const ours = await digA(n.host, n.dnsPort);
    if (ours.length === 0) throw new Error(`radiod ${n.name} does not answer stream.radio.test`);
    const nsd = await startNsd(ours, n.workers);
    try {
      const peer = await digA(nsd.host, nsd.port);
      if (peer.join() !== ours.join()) throw new Error(`NSD answers ${peer.join()}, radiod ${ours.join()}`);
      out.push(await dnsperf(`radiod, ${n.workers} worker${n.workers > 1 ? 's' : ''}, rate limiting on`, n.workers, n.host, n.dnsPort, [n.proc.pid]));
      out.push(await dnsperf(`NSD, ${n.workers} server${n.workers > 1 ? 's' : ''}, rrl off`, n.workers, nsd.host, nsd.port, nsd.pids()));
    } finally {
      await nsd.stop();
    }
  }
  return out;
}
