/**
 * Runs the node's Icecast: writes its configuration from the cluster state
 * (atomically, readable only by the user Icecast runs as), starts icecast2
 * in the foreground under SupervisedChild, reloads it with SIGHUP when the
 * configuration changes, restarts it when its role changes (master <->
 * relay) and scrapes /admin/stats once a second for the node status.
 */
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { EventEmitter } from 'node:events';
import { SupervisedChild } from '../control/child-process.ts';
import { describe } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { MountRecord } from '../state/mount-record.ts';
import { renderIcecastConfig } from './icecast-config.ts';
import { fetchIcecastStats, type IcecastStats } from './icecast-stats.ts';

export interface IcecastOptions {
  dataDir: string;
  bindAddrs: string[];
  port: number;
  hostname: string;
  limits: { clients: number; queueSize: number; burstSize: number };
  binary?: string;
}

export interface IcecastDesired {
  role: 'master' | 'relay';
  mounts: readonly MountRecord[];
  master: { host: string; port: number } | null;
  relayRetry?: ReadonlyMap<string, number>;
}

export interface IcecastEvents {
  /** The live mounts or readiness changed. */
  stats: [];
}

/** Icecast 2.4 log lines: "[2026-11-20  23:08:58] WARN CONFIG/_parse_root message". */
function icecastLine(line: string, log: Logger): void {
  const m = /^\[[^\]]*\]\s+(\w{4})\s+(.*)$/.exec(line);
  if (!m) return log.debug(line);
  if (m[1] === 'EROR') log.warn(m[2]!);
  else if (m[1] === 'WARN') log.info(m[2]!);
  else log.debug(m[2]!);
}

/** uid/gid of a user and group from /etc/passwd and /etc/group (no lookup service needed). */
function ids(user: string, group: string): { uid: number; gid: number } | null {
  const find = (file: string, name: string): number | null => {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name) return Number(f[2]);
    }
    return null;
  };
  try {
    const uid = find('/etc/passwd', user);
    const gid = find('/etc/group', group);
    return uid !== null && gid !== null ? { uid, gid } : null;
  } catch {
    return null;
  }
}

export class IcecastManager extends EventEmitter<IcecastEvents> {
  readonly opts: IcecastOptions;
  readonly child: SupervisedChild;
  readonly adminPassword = randomBytes(18).toString('base64url');
  readonly #sourcePassword = randomBytes(18).toString('base64url');
  readonly #dir: string;
  readonly #file: string;
  readonly #owner: { uid: number; gid: number } | null;
  #config = '';
  #role: IcecastDesired['role'] | null = null;
  #scrape: NodeJS.Timeout | null = null;
  #scraping = false;
  #stopped = false;
  /** Last successful scrape, or null while Icecast does not answer. */
  stats: IcecastStats | null = null;
  /** Config reloads (SIGHUP) and role restarts, for status and tests. */
  reloads = 0;
  roleRestarts = 0;

  constructor(opts: IcecastOptions) {
    super();
    this.opts = opts;
    this.#dir = join(opts.dataDir, 'icecast');
    this.#file = join(this.#dir, 'icecast.xml');
    // Icecast 2.4 refuses to run as root unless told to change owner.
    this.#owner = process.getuid?.() === 0 ? ids('nobody', 'nogroup') : null;
    this.child = new SupervisedChild({
      name: 'icecast',
      command: opts.binary ?? 'icecast2',
      args: ['-c', this.#file],
      onLine: icecastLine,
      pidFile: join(opts.dataDir, 'icecast.pid'),
      ownedIf: ` ${this.#file} `,
    });
    this.child.on('exit', () => this.#setStats(null));
  }

  get ready(): boolean {
    return this.child.running && this.stats !== null;
  }

  /** Ends an Icecast left running by an earlier radiod on this data directory. */
  async prepare(): Promise<void> {
    mkdirSync(this.#dir, { recursive: true, mode: 0o755 });
    if (this.#owner) {
      // Icecast runs as nobody: every directory above its files must let others through.
      for (let d = this.#dir; d !== dirname(d); d = dirname(d)) {
        if ((statSync(d).mode & 0o001) === 0) {
          this.child.log.error(`${d} is not searchable by nobody, so Icecast cannot read its configuration; chmod o+x ${d}`);
          break;
        }
      }
    }
    await this.child.reapOrphan();
  }

  /** Brings the running Icecast in line with `want`. */
  apply(want: IcecastDesired): void {
    // A cluster change arriving during shutdown must not start Icecast again.
    if (this.#stopped) return;
    const config = renderIcecastConfig({
      role: want.role,
      bindAddrs: this.opts.bindAddrs,
      port: this.opts.port,
      hostname: this.opts.hostname,
      adminPassword: this.adminPassword,
      sourcePassword: this.#sourcePassword,
      mounts: want.mounts,
      master: want.master,
      relayRetry: want.relayRetry,
      limits: this.opts.limits,
      logDir: join(this.#dir, 'log'),
      changeOwner: this.#owner ? { user: 'nobody', group: 'nogroup' } : null,
    });
    if (config === this.#config && this.child.running) return;
    const roleChanged = this.#role !== null && this.#role !== want.role;
    this.#write(config);
    this.#config = config;
    this.#role = want.role;
    if (!this.child.running) {
      this.child.start();
    } else if (roleChanged) {
      // A reload keeps sources and relays that the new role must drop; start afresh.
      this.roleRestarts++;
      this.child.log.info(`role is now ${want.role}; restarting`);
      this.child.restart(3000);
    } else {
      this.reloads++;
      this.child.signal('SIGHUP');
    }
    this.#scrape ??= setInterval(() => void this.#poll(), 1000);
  }

  #write(config: string): void {
    const log = join(this.#dir, 'log');
    mkdirSync(log, { recursive: true, mode: 0o755 });
    const tmp = `${this.#file}.tmp`;
    writeFileSync(tmp, config, { mode: 0o600 });
    if (this.#owner) {
      // Icecast re-reads the file on SIGHUP after dropping privileges.
      chownSync(tmp, this.#owner.uid, this.#owner.gid);
      chownSync(log, this.#owner.uid, this.#owner.gid);
    }
    renameSync(tmp, this.#file);
  }

  async #poll(): Promise<void> {
    if (this.#scraping || !this.child.running) return;
    this.#scraping = true;
    try {
      this.#setStats(await fetchIcecastStats(this.opts.bindAddrs[0]!, this.opts.port, this.adminPassword));
    } catch (err) {
      if (this.stats !== null) this.child.log.warn(`not answering: ${describe(err)}`);
      this.#setStats(null);
    } finally {
      this.#scraping = false;
    }
  }

  #setStats(s: IcecastStats | null): void {
    const before = this.stats === null ? '' : [...this.stats.mounts.keys()].join();
    const after = s === null ? '' : [...s.mounts.keys()].join();
    const changed = (this.stats === null) !== (s === null) || before !== after;
    this.stats = s;
    if (changed) this.emit('stats');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#scrape) clearInterval(this.#scrape);
    this.#scrape = null;
    await this.child.stop(3000);
    this.stats = null;
  }
}
