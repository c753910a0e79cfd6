import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { startCluster } from './cluster.ts';
const exec = promisify(execFile);
const c = await startCluster();
const ticks = (pid: number): Map<string, number> => {
  const m = new Map<string, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      m.set(`${t} ${name}`, Number(f[11]) + Number(f[12]));
    } catch { /* gone */ }
  }
  return m;
};
try {
  await new Promise((r) => setTimeout(r, 5000));
  const pid = c.proxy.proc.pid;
  const a = ticks(pid);
  const perf = exec('perf', ['record', '-g', '-o', '/tmp/idle.perf.data', '-p', String(pid), '--', 'sleep', '20']);
  await perf;
  const b = ticks(pid);
  for (const [k, v] of b) { const d = v - (a.get(k) ?? 0); if (d > 0) console.log(k, (d / 20).toFixed(2), '% of a core'); }
} finally {
  await c.stop();
}
