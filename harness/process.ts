/**
 * Child processes of the harness: spawned with their output kept (in memory,
 * or in a log file when they must outlive the harness), ended by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive } from './net.ts';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory, removed when this process ends. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `radioai-${prefix}-`));
  tempDirs.push(d);
  return d;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  output: () => string;
  exited: Promise<Exit>;
  kill: (sig?: NodeJS.Signals) => Promise<Exit>;
}

export interface RunOptions {
  /** Write stdout and stderr to this file and let the process outlive this one. */
  logFile?: string;
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, o: RunOptions = {}): Proc {
  let child: ChildProcess;
  let out = '';
  if (o.logFile !== undefined) {
    const fd = openSync(o.logFile, 'a');
    child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    child.unref();
  } else {
    child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  }
  const exited = new Promise<Exit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const logFile = o.logFile;
  return {
    child,
    pid: child.pid!,
    output: () => (logFile !== undefined ? readText(logFile) : out),
    exited,
    kill: async (sig: NodeJS.Signals = 'SIGTERM') => {
      if (alive(child.pid!)) child.kill(sig);
      return exited;
    },
  };
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The PID a process left in its PID file, or null. */
export function pidFrom(file: string): number | null {
  const pid = Number(readText(file).trim());
  return pid > 0 ? pid : null;
}

/** SIGKILL to `pid` if it is alive; true when it was. */
export function killPid(pid: number | null, sig: NodeJS.Signals = 'SIGKILL'): boolean {
  if (pid === null || !alive(pid)) return false;
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `pid` is gone, up to `ms`; true when it is. */
export async function gone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}
