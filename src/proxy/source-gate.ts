/**
 * The door's side of source logins, for sources and title updates alike:
 * the address lockout first (source-guard.ts), then admission with the
 * password checked at the edge (source-admission.ts), the refusal of a
 * wrong login held back as the guard says, counters, and one log line per
 * address per lockout.
 *
 * It also watches the sources it carries: when the snapshot changes and a
 * carried source's mount is gone, its credentials are no longer the ones
 * it logged in with (`radioctl edit-mount --new-password`, `delete-mount`),
 * or it was kicked after the source connected (`radioctl kick-source`), the
 * source is dropped, both sides closed, within a check period.
 */
import { logger } from '../core/log.ts';
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { S, type WorkerStats } from '../ipc/worker-stats.ts';
import { say } from './answers.ts';
import { admitSource, stillAdmitted, type Admission } from './source-admission.ts';
import { SourceGuard, addressKey, type GuardLimits } from './source-guard.ts';

const log = logger('sources');

/** How often carried sources are checked against the snapshot (one atomic load while it has not moved). */
export const RECHECK_MS = 250;
/** Refusals held back at once; past this they are answered at once, so a flood cannot pile up timers. */
export const MAX_HELD = 1024;

export const DEFAULT_GUARD_LIMITS: GuardLimits = { failures: 10, lockoutSeconds: 60 };

interface Carried {
  mount: string;
  credential: string;
  /** When the door took it (Unix ms). */
  since: number;
  drop: () => void;
}

/**
 * Whether a source the door took at `since` (Unix ms) predates a kick at
 * `kickedAt` (Unix seconds, 0 for none). The kick is known to the second:
 * a source that reconnected within that same second goes too, and simply
 * reconnects again.
 */
export function kickedSince(kickedAt: number, since: number): boolean {
  return kickedAt > 0 && since < (kickedAt + 1) * 1000;
}

export interface GateOptions {
  reader: SnapshotReader;
  stats: WorkerStats;
  limits?: GuardLimits;
}

export class SourceGate {
  readonly guard: SourceGuard;
  readonly #o: GateOptions;
  readonly #carried = new Set<Carried>();
  #held = 0;
  #seenSeq = -1;
  readonly #timer: NodeJS.Timeout;

  constructor(o: GateOptions) {
    this.#o = o;
    this.guard = new SourceGuard(o.limits ?? DEFAULT_GUARD_LIMITS);
    this.#timer = setInterval(() => this.#recheck(), RECHECK_MS);
    this.#timer.unref();
  }

  /** Sources being carried now. */
  get carried(): number {
    return this.#carried.size;
  }

  /**
   * Admits a source or title update for `mount` from `remote`; resolves
   * when the answer may be given (a wrong login's refusal is held back).
   */
  admit(remote: string, mount: string, authorization: string | undefined): Promise<Admission> {
    const key = addressKey(remote);
    const v = this.guard.check(key);
    if (v.kind === 'locked') {
      this.#o.stats.add(S.SOURCE_LOCKED_OUT, 1);
      return Promise.resolve(this.#lockedOut(v.retryAfterSeconds));
    }
    const a = admitSource(this.#o.reader.current(), mount, authorization);
    if (a.kind === 'admit') {
      this.guard.succeeded(key);
      return Promise.resolve(a);
    }
    if (!a.wrongLogin) return Promise.resolve(a);
    this.#o.stats.add(S.SOURCE_AUTH_FAILURES, 1);
    const f = this.guard.failed(key);
    if (f.lockedNow) {
      const s = this.guard.lockoutSeconds;
      log.warn(`source logins from ${key} refused for ${s} s after ${f.failures} wrong user names or passwords (the last for ${mount})`);
      return Promise.resolve(this.#lockedOut(s));
    }
    if (f.delayMs === 0 || this.#held >= MAX_HELD) return Promise.resolve(a);
    this.#held++;
    return new Promise((resolve) => setTimeout(() => {
      this.#held--;
      resolve(a);
    }, f.delayMs));
  }

  #lockedOut(seconds: number): Admission {
    return {
      kind: 'refuse', wrongLogin: false,
      answer: say('lockedOut', [['Retry-After', String(seconds)]], seconds),
    };
  }

  /** Watches a carried source; `drop` closes it. Returns what to call when it ends on its own. */
  carry(mount: string, credential: string, drop: () => void): () => void {
    const c: Carried = { mount, credential, since: Date.now(), drop };
    this.#carried.add(c);
    return () => this.#carried.delete(c);
  }

  #recheck(): void {
    if (this.#carried.size === 0) return;
    const seq = this.#o.reader.seq();
    if (seq === this.#seenSeq) return;
    this.#seenSeq = seq;
    const snap = this.#o.reader.current();
    for (const c of this.#carried) {
      const kicked = kickedSince(snap.mounts.find((m) => m.path === c.mount)?.kickedAt ?? 0, c.since);
      if (!kicked && stillAdmitted(snap, c.mount, c.credential)) continue;
      this.#carried.delete(c);
      const why = kicked ? 'kicked (radioctl kick-source)' : snap.mounts.some((m) => m.path === c.mount) ? 'its credentials changed' : 'the mount was deleted';
      log.info(`source on ${c.mount} dropped: ${why}`);
      c.drop();
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
