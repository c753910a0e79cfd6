/**
 * CPU time and memory of a server process from /proc, so that every result
 * can be given per CPU-second of the server: on a 2-core machine the load
 * generator competes with the server, and wall-clock rates alone mislead.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** clock ticks per second (getconf CLK_TCK); 100 on Linux x86-64. */
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds (user + system, all threads) used so far by `pid`. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command name: state is field 3; utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** Resident memory of `pid` in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** `pid` and all its descendants (nginx master and workers; NSD's server processes). */
export function family(pid: number): number[] {
  let children: number[] = [];
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    // No children.
  }
  return [pid, ...children.flatMap(family)];
}

export function cpuOf(pids: number[]): number {
  return pids.reduce((a, p) => a + cpuSeconds(p), 0);
}

export function rssOf(pids: number[]): number {
  return pids.reduce((a, p) => a + rssBytes(p), 0);
}
