/**
 * Runs the node's Icecast: writes its configuration from the cluster state
 * (atomically; radiod's file, readable by Icecast's user through its group,
 * see private-files.ts), starts icecast2
 * in the foreground under SupervisedChild, reloads it with SIGHUP when the
 * configuration changes, and scrapes /admin/stats once a second for the
 * node status.
 *
 * A change of role is a reload too, never a restart: the node elected
 * master is normally the standby, whose Icecast relays nothing and has the
 * mounts' credentials already (icecast-config.ts), so it takes the sources
 * carried to it at once. Restarting instead cost the new master's Icecast
 * about a second and a half of not listening, during which the sources
 * were refused. A node that steps down drops the sources it still holds,
 * so that its new relays of the new master can take their mounts (the
 * doors carry those sources on to the new master).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import { SupervisedChild } from '../children/child-process.ts';
import { childUser, type ChildUser } from '../children/child-user.ts';
import { canReplaceIn, canSearch, childDir, firstAncestor, readableDir, writeReadable } from '../children/private-files.ts';
import { describe } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { MountRecord } from '../state/mount-record.ts';
import { AllowListFile } from './allow-list.ts';
import { renderIcecastConfig } from './icecast-config.ts';
import type { IcecastRole } from './icecast-role.ts';
import { fetchIcecastStats, type IcecastStats } from './icecast-stats.ts';
import { killSource } from './source-kill.ts';

export interface IcecastOptions {
  dataDir: string;
  bindAddrs: string[];
  port: number;
  hostname: string;
  limits: { clients: number; queueSize: number; burstSize: number };
  binary?: string;
}

/** How long a reload into the master's role may take to drop the relays of the old master. */
export const RELAY_RELEASE_MS = 2500;

export interface IcecastDesired {
  role: IcecastRole;
  mounts: readonly MountRecord[];
  master: { host: string; port: number } | null;
  relayRetry?: ReadonlyMap<string, number>;
  /** Addresses that may connect to this Icecast (allow-list.ts); null or absent: anyone. */
  allow?: readonly string[] | null;
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

/**
 * How Icecast drops root when radiod is root. It binds only its own port,
 * so normally it is started as the unprivileged user directly and never
 * holds root at all: no configuration parsed and no socket opened as root,
 * nothing resting on Icecast's own <changeowner> code. Only a port below
 * 1024 needs root to bind; then Icecast starts as root and changes owner
 * itself right after binding, as Icecast 2.4 is built to.
 */
export function icecastPrivileges(user: ChildUser | null, port: number): { spawnAs: ChildUser | null; changeOwner: ChildUser | null } {
  if (user === null) return { spawnAs: null, changeOwner: null };
  return port < 1024 ? { spawnAs: null, changeOwner: user } : { spawnAs: user, changeOwner: null };
}

export class IcecastManager extends EventEmitter<IcecastEvents> {
  readonly opts: IcecastOptions;
  readonly child: SupervisedChild;
  readonly adminPassword = randomBytes(18).toString('base64url');
  readonly #sourcePassword = randomBytes(18).toString('base64url');
  readonly #dir: string;
  readonly #file: string;
  readonly #allow: AllowListFile;
  /** Icecast's user when radiod is root; null: radiod's own. */
  readonly #user: ChildUser | null;
  readonly #changeOwner: ChildUser | null;
  readonly #userError: Error | null = null;
  #config = '';
  #role: IcecastDesired['role'] | null = null;
  /** When this node's Icecast was last reloaded into the master's role (0: not since its start). */
  #masterSince = 0;
  /** Per live mount: the bytes Icecast had read from its source at the last scrape, and since when. */
  readonly #reading = new Map<string, { bytes: number; at: number }>();
  #scrape: NodeJS.Timeout | null = null;
  #scraping = false;
  #stopped = false;
  /** Last successful scrape, or null while Icecast does not answer. */
  stats: IcecastStats | null = null;
  /** Config reloads (SIGHUP), changes of role, and restarts after a reload left a relay behind, for status and tests. */
  reloads = 0;
  roleChanges = 0;
  roleRestarts = 0;

  constructor(opts: IcecastOptions) {
    super();
    this.opts = opts;
    this.#dir = join(opts.dataDir, 'icecast');
    this.#file = join(this.#dir, 'icecast.xml');
    let user: ChildUser | null = null;
    try {
      user = childUser();
    } catch (err) {
      // Reported by prepare(), where a failure stops radiod's start cleanly.
      this.#userError = err as Error;
    }
    this.#user = user;
    this.#allow = new AllowListFile(join(this.#dir, 'allow-ip'), user);
    const how = icecastPrivileges(this.#user, opts.port);
    this.#changeOwner = how.changeOwner;
    this.child = new SupervisedChild({
      name: 'icecast',
      command: opts.binary ?? 'icecast2',
      args: ['-c', this.#file],
      onLine: (line, log) => {
        icecastLine(line, log);
        this.#watchLine(line);
      },
      pidFile: join(opts.dataDir, 'icecast.pid'),
      ownedIf: ` ${this.#file} `,
      user: how.spawnAs,
      cwd: this.#dir,
      keepCapabilities: opts.port < 1024,
    });
    this.child.on('exit', () => this.#setStats(null));
  }

  /** The role the running Icecast was last given, or null before its first start. */
  get role(): IcecastRole | null {
    return this.#role;
  }

  get ready(): boolean {
    return this.child.running && this.stats !== null;
  }

  /** Ends an Icecast left running by an earlier radiod on this data directory. */
  async prepare(): Promise<void> {
    if (this.#userError !== null) throw this.#userError;
    readableDir(this.#dir, this.#user);
    childDir(join(this.#dir, 'log'), this.#user);
    const u = this.#user;
    if (u) {
      this.child.log.info(`runs as ${u.name}:${u.group}${this.#changeOwner ? ' (started as root for a port below 1024, then changing owner)' : ''}`);
      // Icecast must pass through every directory above its files.
      const closed = firstAncestor(this.#dir, (p) => !canSearch(p, u));
      if (closed !== null) this.child.log.error(`${closed} is not searchable by ${u.name}, so Icecast cannot read its configuration; chmod o+x ${closed}`);
      // A directory the child may change lets it swap what radiod writes for its own.
      const open = firstAncestor(this.opts.dataDir, (p) => canReplaceIn(p, u));
      if (open !== null) this.child.log.warn(`${open} is writable by ${u.name}, which Icecast and liquidsoap run as: they could replace the configuration radiod keeps below it; chown root ${open} (or run radiod as ${u.name})`);
    }
    await this.child.reapOrphan();
  }

  /** Brings the running Icecast in line with `want`. */
  apply(want: IcecastDesired): void {
    // A cluster change arriving during shutdown must not start Icecast again.
    if (this.#stopped) return;
    // Before the configuration that names it: Icecast lets everyone in while the file is missing.
    const allow = want.allow ?? null;
    if (allow !== null) this.#allow.write(allow);
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
      allowFile: allow !== null ? this.#allow.file : null,
      changeOwner: this.#changeOwner ? { user: this.#changeOwner.name, group: this.#changeOwner.group } : null,
    });
    const was = this.#role;
    this.#role = want.role;
    if (was !== null && was !== want.role && this.child.running) {
      this.roleChanges++;
      this.#masterSince = want.role === 'master' ? Date.now() : 0;
      // The standby's configuration is the master's but for external relays: often nothing to reload.
      this.child.log.info(`role is now ${want.role}${config === this.#config ? '' : '; configuration reloaded'}`);
      // A reload leaves connected sources alone: a node that is not master any more has none to keep.
      if (want.role !== 'master' && was !== 'relay') this.#dropSources();
    }
    if (config === this.#config && this.child.running) return;
    this.#write(config);
    this.#config = config;
    if (!this.child.running) {
      this.child.start();
    } else {
      this.reloads++;
      this.child.signal('SIGHUP');
    }
    this.#scrape ??= setInterval(() => void this.#poll(), 1000);
  }

  /**
   * The safety net under the reload into the master's role: Icecast 2.4
   * usually drops its relays of the old master within about a second of
   * the reload, but has been seen to keep one holding its mount for good,
   * refusing every source with "Mountpoint in use". Seen more than
   * RELAY_RELEASE_MS after the reload for a mount whose source here sends
   * nothing,
   * it earns Icecast the restart a reload was meant to spare (once per
   * change of role): a fresh Icecast holds no relay at all.
   */
  #watchLine(line: string): void {
    if (this.#masterSince === 0 || this.#role !== 'master') return;
    const m = /Mountpoint (\S+) in use/.exec(line);
    if (!m || Date.now() - this.#masterSince < RELAY_RELEASE_MS || this.#fed(m[1]!)) return;
    this.#masterSince = 0;
    this.roleRestarts++;
    this.child.log.warn(`${m[1]} is still held by a relay of the old master after the reload; restarting Icecast`);
    this.child.restart(3000);
  }

  /**
   * Whether `mount` has a source that sends: Icecast lists a relay that
   * holds a mount without reading anything too, so being listed is not
   * enough; what it read must have grown within the last two scrapes.
   */
  #fed(mount: string): boolean {
    const r = this.#reading.get(mount);
    return r !== undefined && Date.now() - r.at < 2200;
  }

  /** Asks Icecast to drop every source it holds (its relays come back on their own). */
  #dropSources(): void {
    const icecast = { host: this.opts.bindAddrs[0]!, port: this.opts.port, adminPassword: this.adminPassword };
    for (const mount of this.stats?.mounts.keys() ?? []) {
      killSource(icecast, mount).catch((err: unknown) => this.child.log.warn(`could not drop the source of ${mount}: ${describe(err)}`));
    }
  }

  #write(config: string): void {
    // Icecast re-reads the file on SIGHUP as its own user: readable by it, never writable.
    writeReadable(this.#file, config, this.#user);
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
    const now = Date.now();
    for (const [path, m] of s?.mounts ?? []) {
      const seen = this.#reading.get(path);
      if (!seen || seen.bytes !== m.bytesRead) this.#reading.set(path, { bytes: m.bytesRead, at: now });
    }
    for (const path of this.#reading.keys()) if (!s?.mounts.has(path)) this.#reading.delete(path);
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
