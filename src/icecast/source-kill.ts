/**
 * A mount whose password (or user name) changes, or that is deleted, must
 * lose the source that logged in with the old credentials, and a kicked
 * mount (`radioctl kick-source`) the source it had: Icecast checks a
 * source's login only when it connects, and a configuration reload leaves
 * connected sources alone. The front door drops the sources it carries
 * itself (proxy/source-gate.ts); this covers every other path to the
 * master's Icecast (a source connected to its internal port directly, a
 * node whose door restarted while the source stayed up, a transcoder).
 *
 * On the master, radiod asks its own Icecast to drop such a mount's source
 * with Icecast 2.4's `/admin/killsource?mount=M` and the admin login it
 * generated. Icecast may take a moment to re-read the configuration, and a
 * client that reconnects at once could still get in with the old password
 * in between; so for a while after the change every source on the mount
 * that went live before the change is dropped, judged by the start time
 * Icecast reports, while one that connected afterwards (necessarily with
 * the new password, once the reload is done) is left alone.
 */
import { logger } from '../core/log.ts';
import { hostPort } from '../core/host-port.ts';
import type { MountRecord } from '../state/mount-record.ts';
import type { IcecastStats } from './icecast-stats.ts';

const log = logger('icecast');

/** How long after a change sources that predate it are still looked for. */
export const WATCH_MS = 15_000;
/** Time Icecast has to answer a kill. */
const KILL_TIMEOUT_MS = 2000;
/**
 * After a kill, the same mount is left alone this long: the statistics are
 * scraped once a second and may still show the dropped source, and a source
 * that connected since must not be taken for it.
 */
export const KILL_PAUSE_MS = 2500;

type Login = Pick<MountRecord, 'path' | 'username' | 'password' | 'relay' | 'kickedAt'>;
type Why = 'deleted' | 'changed' | 'kicked';
const REASONS: Record<Why, string> = { deleted: 'the mount was deleted', changed: 'its credentials changed', kicked: 'kicked (radioctl kick-source)' };

/**
 * Mounts whose source must go: present before and deleted since, with
 * another user name or password now, or kicked since. Relay mounts are left
 * out: nothing logs in to them, Icecast pulls them itself.
 */
export function credentialChanges(before: ReadonlyMap<string, Login>, after: ReadonlyMap<string, Login>): { path: string; why: Why }[] {
  const out: { path: string; why: Why }[] = [];
  for (const [path, b] of before) {
    if (b.relay !== null) continue;
    const a = after.get(path);
    if (!a) out.push({ path, why: 'deleted' });
    else if (a.username !== b.username || a.password !== b.password) out.push({ path, why: 'changed' });
    else if ((a.kickedAt ?? null) !== (b.kickedAt ?? null)) out.push({ path, why: 'kicked' });
  }
  return out;
}

/**
 * Whether the source Icecast reports on a mount predates a change at
 * `changedAt` (Unix ms). Icecast gives its start to the second, so a source
 * that started in the same second as the change counts as older; one whose
 * start cannot be read counts as older too.
 */
export function predates(streamStart: string, changedAt: number): boolean {
  const started = Date.parse(streamStart);
  return !Number.isFinite(started) || started <= changedAt;
}

export interface SourceKillerOptions {
  host: string;
  port: number;
  adminPassword: string;
  /** Asks Icecast to drop `mount`'s source; the default speaks HTTP to host:port. */
  kill?: (mount: string) => Promise<void>;
}

export class SourceKiller {
  readonly #o: SourceKillerOptions;
  #known: Map<string, Login> | null = null;
  /** Mount -> when its credentials changed, and why. */
  readonly #pending = new Map<string, { at: number; why: Why }>();
  /** Mount -> when it was last asked to drop its source. */
  readonly #killedAt = new Map<string, number>();
  /** Kills asked of Icecast, for tests and the log. */
  kills = 0;

  constructor(o: SourceKillerOptions) {
    this.#o = o;
  }

  /** Notes the mounts as they are now; the first call only learns them. */
  sync(mounts: Iterable<MountRecord>, now = Date.now()): void {
    const next = new Map<string, Login>();
    for (const m of mounts) next.set(m.path, { path: m.path, username: m.username, password: m.password, relay: m.relay, kickedAt: m.kickedAt ?? null });
    if (this.#known) for (const c of credentialChanges(this.#known, next)) this.#pending.set(c.path, { at: now, why: c.why });
    this.#known = next;
  }

  /** Drops what must go from this node's Icecast, when this node is the master (the only Icecast that takes sources). */
  check(stats: IcecastStats | null, master: boolean, now = Date.now()): void {
    for (const [path, p] of this.#pending) {
      if (now - p.at > WATCH_MS || !master) {
        this.#pending.delete(path);
        this.#killedAt.delete(path);
        continue;
      }
      const live = stats?.mounts.get(path);
      if (!live || !predates(live.info.streamStart, p.at) || now - (this.#killedAt.get(path) ?? 0) < KILL_PAUSE_MS) continue;
      this.#killedAt.set(path, now);
      this.kills++;
      log.info(`dropping the source of ${path}: ${REASONS[p.why]}`);
      (this.#o.kill ?? ((m) => this.#kill(m)))(path).catch((err: unknown) => {
        // 400: Icecast has no source there any more (a door dropped it first); the mount may still be
        // listed while its listeners play the fallback. Nothing is left to drop.
        if ((err as { status?: unknown }).status === 400) {
          this.#pending.delete(path);
          return;
        }
        log.warn(`could not drop the source of ${path}: ${err instanceof Error ? err.message : String(err)}`);
      });
    }
  }

  #kill(mount: string): Promise<void> {
    return killSource(this.#o, mount);
  }
}

/** Asks the Icecast at host:port to drop `mount`'s source (Icecast 2.4's /admin/killsource). */
export async function killSource(icecast: { host: string; port: number; adminPassword: string }, mount: string): Promise<void> {
  const res = await fetch(`http://${hostPort(icecast.host, icecast.port)}/admin/killsource?mount=${encodeURIComponent(mount)}`, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${icecast.adminPassword}`).toString('base64')}` },
    signal: AbortSignal.timeout(KILL_TIMEOUT_MS),
  });
  await res.arrayBuffer();
  if (!res.ok) throw Object.assign(new Error(`Icecast answered ${res.status}`), { status: res.status });
}
