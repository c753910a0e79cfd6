/**
 * A supervised child process: started in the foreground, its output turned
 * into log lines, restarted with exponential backoff when it dies while it
 * should run, and stopped with SIGTERM then SIGKILL. Used for the embedded
 * etcd, and for Icecast and liquidsoap.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { logger, type Logger } from '../core/log.ts';
import type { ChildUser } from './child-user.ts';

export interface ChildSpec {
  /** Name in logs and events, e.g. "etcd". */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** First restart delay; doubles per crash up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A run this long counts as healthy and resets the backoff. */
  stableMs?: number;
  /** Turns an output line into a log call; default logs every line at info. */
  onLine?: (line: string, log: Logger) => void;
  /**
   * Where the child's PID is kept while it runs. A radiod killed with SIGKILL
   * leaves its children running (outside systemd nothing ends the orphans);
   * reapOrphan() lets the next radiod end them, and only them: the PID must
   * still run `command` with `ownedIf` in its command line.
   */
  pidFile?: string;
  ownedIf?: string;
  /**
   * Run the child as this user (and its group, with no supplementary
   * groups): set when radiod is root (child-user.ts). Null or absent: as
   * radiod's own user.
   */
  user?: ChildUser | null;
  /**
   * Let the child inherit radiod's ambient capabilities. Under systemd
   * radiod holds CAP_NET_BIND_SERVICE for ports 80 and 53; a child that
   * binds no port below 1024 does not get it.
   */
  keepCapabilities?: boolean;
}

/** The ambient capability bits in a /proc/PID/status text (0 when the line is missing). */
export function ambientCaps(status: string): bigint {
  const m = /^CapAmb:\s*([0-9a-f]+)$/im.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/**
 * How to start `command` so that it holds no capability: through setpriv
 * (util-linux), which clears the ambient and inheritable sets and then
 * execs it under the same PID. Without ambient capabilities, or with a
 * user switch (which clears them itself), it is started directly.
 */
export function launch(command: string, args: string[], o: { ambient: bigint; switchesUser: boolean; keepCapabilities: boolean; setpriv: string | null }): { command: string; args: string[] } {
  if (o.ambient === 0n || o.switchesUser || o.keepCapabilities || o.setpriv === null) return { command, args };
  return { command: o.setpriv, args: ['--ambient-caps', '-all', '--inh-caps', '-all', '--', command, ...args] };
}

let own: { ambient: bigint; setpriv: string | null } | null = null;
function ownCaps(): { ambient: bigint; setpriv: string | null } {
  if (own === null) {
    let ambient = 0n;
    try {
      ambient = ambientCaps(readFileSync('/proc/self/status', 'utf8'));
    } catch {
      // Not Linux: no ambient capabilities either.
    }
    const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/bin'].filter(Boolean);
    const setpriv = dirs.map((d) => join(d, 'setpriv')).find((f) => existsSync(f)) ?? null;
    own = { ambient, setpriv };
    if (ambient !== 0n && setpriv === null) logger('radiod').warn('setpriv (util-linux) not found: children keep radiod\'s capabilities');
  }
  return own;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface ChildEvents {
  start: [pid: number];
  exit: [code: number | null, signal: NodeJS.Signals | null, expected: boolean];
}

export class SupervisedChild extends EventEmitter<ChildEvents> {
  readonly spec: Required<Pick<ChildSpec, 'minBackoffMs' | 'maxBackoffMs' | 'stableMs'>> & ChildSpec;
  readonly log: Logger;
  #child: ChildProcess | null = null;
  #wanted = false;
  #backoff: number;
  #timer: NodeJS.Timeout | null = null;
  #startedAt = 0;
  #restartPending = false;
  restarts = 0;

  constructor(spec: ChildSpec) {
    super();
    this.spec = { minBackoffMs: 500, maxBackoffMs: 30_000, stableMs: 60_000, ...spec };
    this.#backoff = this.spec.minBackoffMs;
    this.log = logger(spec.name);
    const pidFile = spec.pidFile;
    if (pidFile !== undefined) {
      let last = 0;
      this.on('start', (pid) => {
        last = pid;
        writeFileSync(pidFile, `${pid}\n`);
      });
      // Remove the file only while it still names our child: a successor may have written its own.
      this.on('exit', () => {
        try {
          if (Number(readFileSync(pidFile, 'utf8').trim()) === last) rmSync(pidFile, { force: true });
        } catch {
          // Already gone.
        }
      });
    }
  }

  /** Ends a child left running by an earlier, killed radiod (see ChildSpec.pidFile). */
  async reapOrphan(): Promise<void> {
    const { pidFile, ownedIf, command } = this.spec;
    if (pidFile === undefined) return;
    let pid: number;
    try {
      pid = Number(readFileSync(pidFile, 'utf8').trim());
    } catch {
      return;
    }
    let cmdline = '';
    try {
      cmdline = `${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')} `;
    } catch {
      // Gone already.
    }
    const base = command.split('/').pop()!;
    if (pid > 0 && new RegExp(`(^|/)${base} `).test(cmdline) && (ownedIf === undefined || cmdline.includes(ownedIf))) {
      this.log.warn(`ending ${base} pid ${pid} left over from an earlier radiod`);
      try {
        process.kill(pid, 'SIGTERM');
        for (let i = 0; i < 50 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      } catch {
        // It ended on its own meanwhile.
      }
    }
    rmSync(pidFile, { force: true });
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get running(): boolean {
    return this.#child !== null && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  start(): void {
    this.#wanted = true;
    if (!this.#child && !this.#timer) this.#spawn();
  }

  #spawn(): void {
    this.#timer = null;
    const { command, args, env, cwd } = this.spec;
    const user = this.spec.user ?? null;
    const run = launch(command, args, { ...ownCaps(), switchesUser: user !== null, keepCapabilities: this.spec.keepCapabilities ?? false });
    const child = spawn(run.command, run.args, {
      env: env ?? process.env, cwd, stdio: ['ignore', 'pipe', 'pipe'],
      // libuv drops the supplementary groups too when it switches user.
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    this.#child = child;
    this.#startedAt = Date.now();
    const onLine = this.spec.onLine ?? ((line: string, log: Logger) => log.info(line));
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => onLine(line, this.log));
    }
    child.on('error', (err) => {
      // Spawn failures (ENOENT, EACCES) arrive here and then as 'exit'/'close'.
      this.log.error(`could not run ${command}: ${err.message}`);
    });
    child.on('spawn', () => {
      if (child.pid !== undefined) this.emit('start', child.pid);
    });
    child.on('close', (code, signal) => {
      if (this.#child === child) this.#child = null;
      if (this.#restartPending && this.#wanted) {
        this.#restartPending = false;
        this.emit('exit', code, signal, true);
        this.#spawn();
        return;
      }
      const expected = !this.#wanted;
      this.emit('exit', code, signal, expected);
      if (expected) return;
      if (Date.now() - this.#startedAt >= this.spec.stableMs) this.#backoff = this.spec.minBackoffMs;
      this.restarts++;
      this.log.warn(`exited (${signal ?? `code ${code}`}); restarting in ${this.#backoff} ms`);
      this.#timer = setTimeout(() => this.#spawn(), this.#backoff);
      this.#backoff = Math.min(this.#backoff * 2, this.spec.maxBackoffMs);
    });
  }

  /** Stops the running child and starts it again at once (a deliberate restart, not counted as a crash). */
  restart(graceMs = 5000): void {
    this.#wanted = true;
    const child = this.#child;
    if (!child || !this.running) {
      this.start();
      return;
    }
    this.#restartPending = true;
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('close', () => clearTimeout(kill));
  }

  /** Sends a signal to the running child (e.g. SIGHUP to reload). */
  signal(sig: NodeJS.Signals): boolean {
    return this.#child?.kill(sig) ?? false;
  }

  /** Stops the child: SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
  async stop(graceMs = 5000): Promise<void> {
    this.#wanted = false;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await closed;
    clearTimeout(kill);
  }
}
