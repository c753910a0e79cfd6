/**
 * `npm run bench [-- NAME]`: runs the benchmarks (all, or the one named),
 * each against its peer in the same invocation, and writes
 * bench/results/result.json, result.md and latency.svg. Settings come
 * from the environment: BENCH_DURATION, BENCH_CONNECTIONS,
 * BENCH_FANOUT_SIZES, BENCH_FANOUT_SECONDS, BENCH_FANOUT_FORMAT,
 * BENCH_FANOUT_PORT, BENCH_CROWD_SIZE, BENCH_SOURCES, BENCH_SOURCES_SECONDS,
 * BENCH_LATENCY_SECONDS, BENCH_LATENCY_CROWDS, BENCH_WORKERS, BENCH_FAILOVER_RUNS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { startCluster } from './cluster.ts';
import { fanoutBench, opsCost, type FanoutResult, type OpsResult } from './fanout.ts';
import { redirectBench, type LoadResult } from './redirect.ts';
import { dnsBench, type DnsResult } from './dns.ts';
import { playlistBench, statusBench } from './pages.ts';
import { flashcrowdBench, type CrowdResult } from './flashcrowd.ts';
import { latencyBench, latencySvg, type LatencyResult } from './latency.ts';
import { failoverBench, median, type FailoverRun } from './failover.ts';
import { microBench, type MicroResult } from './micro.ts';
import { sourcesBench, type SourcesResult } from './sources.ts';

const NAMES = ['micro', 'redirect', 'playlist', 'status', 'fanout', 'sources', 'flashcrowd', 'dns', 'latency', 'failover'] as const;
const which = process.argv[2] ?? 'all';
if (which !== 'all' && !(NAMES as readonly string[]).includes(which)) {
  process.stderr.write(`unknown benchmark "${which}"; one of: ${NAMES.join(', ')}\n`);
  process.exit(1);
}
const want = (n: string): boolean => which === 'all' || which === n;

const results: {
  redirect?: LoadResult[]; playlist?: LoadResult[]; status?: LoadResult[]; fanout?: FanoutResult[]; ops?: OpsResult[]; sources?: SourcesResult[]; flashcrowd?: CrowdResult[];
  dns?: DnsResult[]; latency?: LatencyResult[]; failover?: FailoverRun[]; micro?: MicroResult[]; machine: string; date: string;
} = {
  machine: `${(await import('node:os')).cpus().length} cores, node ${process.version}`,
  date: new Date().toISOString(),
};
// In this process, before anything else loads the machine.
if (want('micro')) results.micro = microBench();
// The failover benchmark brings up a three-node cluster of its own; the micro-benchmarks need none.
const cluster = which === 'failover' || which === 'micro' ? null : await startCluster();
if (cluster) try {
  if (want('redirect')) results.redirect = await redirectBench(cluster);
  if (want('playlist')) results.playlist = await playlistBench(cluster);
  if (want('status')) results.status = await statusBench(cluster);
  if (want('fanout')) {
    const sizes = (process.env.BENCH_FANOUT_SIZES ?? '1000,5000,10000,18000').split(',').map(Number);
    results.fanout = await fanoutBench(cluster, sizes);
    if (process.env.BENCH_OPS !== '0') results.ops = await opsCost(cluster);
  }
  if (want('sources')) results.sources = await sourcesBench(cluster);
  if (want('flashcrowd')) results.flashcrowd = await flashcrowdBench(cluster);
  if (want('dns')) results.dns = await dnsBench(cluster);
  if (want('latency')) results.latency = await latencyBench(cluster);
} finally {
  await cluster.stop();
}
if (want('failover')) results.failover = await failoverBench();

const md: string[] = [`# radioai bench, ${results.date} (${results.machine})`, ''];
if (results.micro) {
  md.push('## micro', '', '| operation | ns per op | yardsticks |', '|---|---|---|');
  for (const r of results.micro) md.push(`| ${r.name} | ${r.nsPerOp} | ${r.yardsticks} |`);
  md.push('');
}
const loadTable = (name: string, rows: LoadResult[]): void => {
  md.push(`## ${name}`, '', '| server | req/s | CPU s | req per CPU-s | p50 ms | p99 ms | errors |', '|---|---|---|---|---|---|---|');
  for (const r of rows) md.push(`| ${r.server} | ${r.rps} | ${r.cpuSeconds} | ${r.perCpuSecond} | ${r.p50ms} | ${r.p99ms} | ${r.non2xx3xx} |`);
  md.push('');
  // Rows come in pairs, radiod then its peer under the same conditions.
  for (let i = 0; i + 1 < rows.length; i += 2) {
    const [ours, peer] = [rows[i]!, rows[i + 1]!];
    md.push(`${ours.server} / ${peer.server}: ${(ours.perCpuSecond / peer.perCpuSecond).toFixed(2)} per CPU-second, ${(ours.rps / peer.rps).toFixed(2)} per second.`, '');
  }
};
if (results.redirect) loadTable('redirect', results.redirect);
if (results.playlist) loadTable('playlist', results.playlist);
if (results.status) loadTable('status', results.status);
if (results.fanout) {
  md.push('## fanout', '', '| server | format | listeners | connected | CPU % before they came | CPU % | CPU % per listener | RSS KiB per listener | share >= 15 kB/s | median B/s |', '|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results.fanout) md.push(`| ${r.server} | ${r.format} | ${r.listeners} | ${r.connected} | ${r.idleCpuPercent} | ${r.cpuPercent} | ${r.cpuPerListenerPct} | ${r.rssPerListenerKiB} | ${r.atRate} | ${r.medianBps} |`);
  md.push('');
}
if (results.ops) {
  md.push('## fanout: listener log and /metrics', '', '| server | listeners | radiod CPU s per visit | log lines | scrapes | /metrics bytes |', '|---|---|---|---|---|---|');
  for (const r of results.ops) md.push(`| ${r.server} | ${r.listeners} | ${r.cpuSeconds} | ${r.logLines} | ${r.scrapes} | ${r.metricsBytes} |`);
  const mean = (on: boolean): number => {
    const rows = results.ops!.filter((r) => (r.logLines > 0) === on);
    return rows.reduce((a, r) => a + r.cpuSeconds, 0) / Math.max(1, rows.length);
  };
  md.push('', `on / off: ${(mean(true) / mean(false)).toFixed(3)} of the CPU per visit; ${(((mean(true) - mean(false)) * 1e6) / Math.max(1, results.ops[0]!.listeners)).toFixed(1)} µs of CPU more per listener session.`, '');
}
if (results.sources) {
  md.push('## sources', '', '| server | sources | CPU % before they came | CPU % | CPU % per source |', '|---|---|---|---|---|');
  for (const r of results.sources) md.push(`| ${r.server} | ${r.sources} | ${r.idleCpuPercent} | ${r.cpuPercent} | ${r.cpuPerSourcePct} |`);
  const [ours, peer] = results.sources;
  if (ours && peer) md.push('', `${ours.server} / ${peer.server}: ${(ours.cpuPerSourcePct / peer.cpuPerSourcePct).toFixed(2)} of the CPU per source.`);
  md.push('');
}
if (results.flashcrowd) {
  md.push('## flashcrowd', '', '| server | listeners in 1 s | answered 200 | within 2 s | share within 2 s | p50 ms | p99 ms |', '|---|---|---|---|---|---|---|');
  for (const r of results.flashcrowd) md.push(`| ${r.server} | ${r.listeners} | ${r.answered200} | ${r.within2s} | ${r.share} | ${r.p50ms} | ${r.p99ms} |`);
  md.push('');
}
if (results.dns) {
  md.push('## dns', '', '| server | queries/s | CPU s | queries per CPU-s | lost |', '|---|---|---|---|---|');
  for (const r of results.dns) md.push(`| ${r.server} | ${r.qps} | ${r.cpuSeconds} | ${r.perCpuSecond} | ${r.lost} |`);
  md.push('');
  for (let i = 0; i + 1 < results.dns.length; i += 2) {
    const [ours, peer] = [results.dns[i]!, results.dns[i + 1]!];
    md.push(`radiod / NSD, ${ours.threads} thread${ours.threads > 1 ? 's' : ''} each: ${(ours.perCpuSecond / peer.perCpuSecond).toFixed(2)} per CPU-second, ${(ours.qps / peer.qps).toFixed(2)} per second.`, '');
  }
}
if (results.latency) {
  md.push('## latency', '', '| path | samples | p50 ms | p90 ms | p99 ms | max ms |', '|---|---|---|---|---|---|');
  for (const r of results.latency) md.push(`| ${r.server} | ${r.samples} | ${r.p50ms} | ${r.p90ms} | ${r.p99ms} | ${r.maxMs} |`);
  md.push('', 'Distribution: [latency.svg](latency.svg).', '');
}
if (results.failover) {
  const f = results.failover;
  md.push('## failover', '', '| run | new master ms | longest listener silence ms | source kept | listeners kept |', '|---|---|---|---|---|');
  for (const r of f) md.push(`| ${r.run} | ${r.electedMs} | ${r.longestSilenceMs} | ${r.sourceKept ? 'yes' : 'no'} | ${r.listenersKept ? 'yes' : 'no'} |`);
  md.push('', `Medians of ${f.length} runs: new master ${median(f.map((r) => r.electedMs))} ms, longest silence ${median(f.map((r) => r.longestSilenceMs))} ms`
    + ` (max ${Math.max(...f.map((r) => r.longestSilenceMs))} ms); source kept in ${f.filter((r) => r.sourceKept).length}/${f.length}, every listener kept in ${f.filter((r) => r.listenersKept).length}/${f.length}.`, '');
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
if (results.latency) writeFileSync(new URL('./results/latency.svg', import.meta.url), latencySvg(results.latency));
writeFileSync(new URL('./results/result.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(new URL('./results/result.md', import.meta.url), `${md.join('\n')}\n`);
process.stdout.write(`${md.join('\n')}\n`);
process.exit(0);
