/**
 * `npm run bench [-- NAME]`: runs the benchmarks (all, or the one named),
 * each against its peer in the same invocation, and writes
 * bench/results/result.json and result.md. Settings come from the
 * environment: BENCH_DURATION, BENCH_CONNECTIONS, BENCH_FANOUT_SIZES,
 * BENCH_FANOUT_SECONDS, BENCH_WORKERS.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { startCluster } from './cluster.ts';
import { fanoutBench, type FanoutResult } from './fanout.ts';
import { redirectBench, type LoadResult } from './redirect.ts';
import { dnsBench, type DnsResult } from './dns.ts';

const NAMES = ['redirect', 'fanout', 'dns'] as const;
const which = process.argv[2] ?? 'all';
if (which !== 'all' && !(NAMES as readonly string[]).includes(which)) {
  process.stderr.write(`unknown benchmark "${which}"; one of: ${NAMES.join(', ')}\n`);
  process.exit(1);
}
const want = (n: string): boolean => which === 'all' || which === n;

const results: { redirect?: LoadResult[]; fanout?: FanoutResult[]; dns?: DnsResult[]; machine: string; date: string } = {
  machine: `${(await import('node:os')).cpus().length} cores, node ${process.version}`,
  date: new Date().toISOString(),
};
const cluster = await startCluster();
try {
  if (want('redirect')) results.redirect = await redirectBench(cluster);
  if (want('fanout')) {
    const sizes = (process.env.BENCH_FANOUT_SIZES ?? '1000,5000').split(',').map(Number);
    results.fanout = await fanoutBench(cluster, sizes);
  }
  if (want('dns')) results.dns = await dnsBench(cluster);
} finally {
  await cluster.stop();
}

const md: string[] = [`# radioai bench, ${results.date} (${results.machine})`, ''];
if (results.redirect) {
  const [ours, peer] = results.redirect;
  md.push('## redirect', '', '| server | req/s | CPU s | req per CPU-s | p50 ms | p99 ms | errors |', '|---|---|---|---|---|---|---|');
  for (const r of results.redirect) md.push(`| ${r.server} | ${r.rps} | ${r.cpuSeconds} | ${r.perCpuSecond} | ${r.p50ms} | ${r.p99ms} | ${r.non2xx3xx} |`);
  if (ours && peer) md.push('', `radiod / nginx: ${(ours.perCpuSecond / peer.perCpuSecond).toFixed(2)} per CPU-second, ${(ours.rps / peer.rps).toFixed(2)} per second.`);
  md.push('');
}
if (results.fanout) {
  md.push('## fanout', '', '| server | listeners | connected | CPU % | CPU % per listener | RSS KiB per listener | share >= 15 kB/s | median B/s |', '|---|---|---|---|---|---|---|---|');
  for (const r of results.fanout) md.push(`| ${r.server} | ${r.listeners} | ${r.connected} | ${r.cpuPercent} | ${r.cpuPerListenerPct} | ${r.rssPerListenerKiB} | ${r.atRate} | ${r.medianBps} |`);
  md.push('');
}
if (results.dns) {
  const [ours, peer] = results.dns;
  md.push('## dns', '', '| server | queries/s | CPU s | queries per CPU-s | lost |', '|---|---|---|---|---|');
  for (const r of results.dns) md.push(`| ${r.server} | ${r.qps} | ${r.cpuSeconds} | ${r.perCpuSecond} | ${r.lost} |`);
  if (ours && peer) md.push('', `radiod / NSD: ${(ours.perCpuSecond / peer.perCpuSecond).toFixed(2)} per CPU-second, ${(ours.qps / peer.qps).toFixed(2)} per second.`);
  md.push('');
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/result.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(new URL('./results/result.md', import.meta.url), `${md.join('\n')}\n`);
process.stdout.write(`${md.join('\n')}\n`);
process.exit(0);
