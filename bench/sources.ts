/**
 * `sources`: what carrying sources costs a node. BENCH_SOURCES (20) MP3
 * sources of 128 kbit/s connect to radiod's ICECAST_PORT, whose door
 * carries each to the master's Icecast (the same node's); then the same
 * sources connect to that Icecast directly, in the same run. Reported: the
 * CPU of radiod and its Icecast against Icecast's alone, before the
 * sources came and while they stream, and what each source adds. The
 * sources are ffmpeg copying a file at its real rate (`-re -c copy`), so
 * that the load generator spends nothing on encoding, and they send as
 * an encoder does, a frame or so at a time.
 *
 * `RADIOAI_SOURCE_RELAY=off npm run bench -- sources` measures the same
 * with every source carried through Node's streams.
 */
import { execFileSync } from 'node:child_process';
import { get } from 'node:http';
import { join } from 'node:path';
import { cpuOf } from './proc-stats.ts';
import type { Cluster } from './cluster.ts';
import { waitFor } from '../harness/net.ts';
import { pidFrom, run, tempDir, type Proc } from '../harness/process.ts';
import { radioctl } from '../harness/radiod.ts';

export interface SourcesResult {
  server: string;
  sources: number;
  /** The server's CPU before the sources came (the cluster's own stream flowing). */
  idleCpuPercent: number;
  cpuPercent: number;
  /** (cpuPercent - idleCpuPercent) / sources. */
  cpuPerSourcePct: number;
}

const N = Number(process.env.BENCH_SOURCES ?? 20);
const MEASURE_S = Number(process.env.BENCH_SOURCES_SECONDS ?? 10);
const IDLE_S = 5;
/** A node just started still compiles and collects its start-up garbage: its idle figure waits for that. */
const SETTLE_S = 10;

/** Whether `url` answers 200 (a mount with a live source), the stream then dropped. */
function answers200(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false }, (res) => {
      resolve(res.statusCode === 200);
      req.destroy();
    });
    req.on('error', () => resolve(false));
    req.setTimeout(2000, () => req.destroy());
  });
}

async function cpuOver(pids: number[], seconds: number): Promise<number> {
  const c0 = cpuOf(pids);
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((cpuOf(pids) - c0) / ((Date.now() - t0) / 1000)) * 100;
}

async function measure(server: string, urls: string[], file: string, check: string[], pids: number[]): Promise<SourcesResult> {
  const idle = await cpuOver(pids, IDLE_S);
  const procs: Proc[] = urls.map((url) => run('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', file, '-c', 'copy',
    '-content_type', 'audio/mpeg', '-f', 'mp3', url,
  ]));
  try {
    for (const u of check) await waitFor(() => answers200(u), 30_000, `a live source at ${u}`, 250);
    // The door's admissions and Icecast's new mounts are behind: steady state only.
    await new Promise((r) => setTimeout(r, 2000));
    const cpu = await cpuOver(pids, MEASURE_S);
    return {
      server,
      sources: urls.length,
      idleCpuPercent: Number(idle.toFixed(2)),
      cpuPercent: Number(cpu.toFixed(2)),
      cpuPerSourcePct: Number(((cpu - idle) / urls.length).toFixed(3)),
    };
  } finally {
    for (const p of procs) await p.kill('SIGTERM');
  }
}

export async function sourcesBench(cluster: Cluster): Promise<SourcesResult[]> {
  const p = cluster.proxy;
  const icecastPid = pidFrom(join(p.dataDir, 'icecast.pid'))!;
  const dir = tempDir('bench-sources');
  const file = join(dir, 'tone.mp3');
  execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100', '-t', '20',
    '-c:a', 'libmp3lame', '-b:a', '128k', '-f', 'mp3', file]);
  const mounts: { path: string; user: string; password: string }[] = [];
  for (let i = 0; i < N; i++) {
    const path = `/src${i}.mp3`;
    const m = JSON.parse((await radioctl(cluster.etcd.url, ['--json', 'create-mount', path])).stdout) as { username: string; password: string };
    mounts.push({ path, user: encodeURIComponent(m.username), password: encodeURIComponent(m.password) });
  }
  const icecast = `${p.host}:${p.icecastInternalPort}`;
  const check = mounts.map((m) => `http://${icecast}${m.path}`);
  // Icecast learns of new mounts at its next reload; radiod settles after its start.
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const out: SourcesResult[] = [];
  out.push(await measure('radiod ICECAST_PORT carrying to its Icecast (+ its Icecast)',
    mounts.map((m) => `icecast://${m.user}:${m.password}@${p.host}:${p.icecastPort}${m.path}`), file, check, [p.proc.pid, icecastPid]));
  // The same mounts free again before the sources go to Icecast itself.
  for (const u of check) await waitFor(async () => !(await answers200(u)), 20_000, `${u} without its source`, 250);
  out.push(await measure('Icecast direct',
    mounts.map((m) => `icecast://${m.user}:${m.password}@${icecast}${m.path}`), file, check, [icecastPid]));
  return out;
}
