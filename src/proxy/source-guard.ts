/**
 * Wrong source logins, per client address: after a few, each refusal is
 * answered later and later; after more, the address is refused outright
 * for a while, right password or not, without its attempt reaching the
 * password check at all. Title updates (/admin/metadata) count the same, as
 * they carry the same login.
 *
 * The table is per worker thread and bounded: past `tableSize` addresses
 * the one touched longest ago is forgotten, so a flood from many addresses
 * costs a fixed amount of memory (it can only make the table forget). An
 * address's failures are forgotten once it has been quiet for a lockout
 * period; until then, one more wrong login after a lockout ends starts the
 * next one, so a guesser gets `failures` tries and then one per period,
 * while a station that fixes its password is admitted at its first attempt
 * after the lockout (a right login clears the address).
 *
 * The kernel spreads connections over the worker threads (SO_REUSEPORT), so
 * one address may have up to WORKERS times `failures` wrong logins before
 * every thread has locked it out.
 */
import { clientKey } from './conn-limits.ts';

export interface GuardLimits {
  /** Wrong logins from one address before it is locked out; 0 turns slowing and lockout off. */
  failures: number;
  /** How long a lockout lasts, and how long failures are remembered after the last one, seconds. */
  lockoutSeconds: number;
}

export const GUARD = {
  /** Failures answered at once; from the next one on, answers are delayed. */
  freeFailures: 2,
  firstDelayMs: 500,
  maxDelayMs: 4000,
  /** Addresses remembered per worker thread. */
  tableSize: 4096,
} as const;

/** How long to hold back the answer to the `n`th consecutive wrong login (1-based). */
export function delayFor(n: number): number {
  if (n <= GUARD.freeFailures) return 0;
  return Math.min(GUARD.maxDelayMs, GUARD.firstDelayMs * 2 ** (n - GUARD.freeFailures - 1));
}

/**
 * The key an address is counted under: IPv4 addresses as they are (also
 * when written IPv4-mapped), IPv6 addresses by their /64, since one host
 * usually holds a whole /64 and could otherwise change address per attempt.
 */
export function addressKey(addr: string): string {
  // The same grouping as the connection limits', written as a prefix for the log.
  const k = clientKey(addr);
  return k.includes(':') ? `${k.split(':').map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64` : k;
}

interface Entry {
  failures: number;
  lastFailureAt: number;
  lockedUntil: number;
}

export type Verdict = { kind: 'pass' } | { kind: 'locked'; retryAfterSeconds: number };

export interface Failure {
  /** Hold the refusal back this long. */
  delayMs: number;
  /** This failure started a lockout (log it once). */
  lockedNow: boolean;
  failures: number;
}

export class SourceGuard {
  readonly #limits: GuardLimits;
  readonly #tableSize: number;
  readonly #now: () => number;
  /** In order of last touch, oldest first. */
  readonly #table = new Map<string, Entry>();

  constructor(limits: GuardLimits, o: { tableSize?: number; now?: () => number } = {}) {
    this.#limits = limits;
    this.#tableSize = o.tableSize ?? GUARD.tableSize;
    this.#now = o.now ?? Date.now;
  }

  get size(): number {
    return this.#table.size;
  }

  get lockoutSeconds(): number {
    return this.#limits.lockoutSeconds;
  }

  /** Before anything else is looked at: is `key` locked out now? */
  check(key: string): Verdict {
    const e = this.#table.get(key);
    const now = this.#now();
    if (!e || now >= e.lockedUntil) return { kind: 'pass' };
    return { kind: 'locked', retryAfterSeconds: Math.ceil((e.lockedUntil - now) / 1000) };
  }

  /** A wrong login from `key`. */
  failed(key: string): Failure {
    if (this.#limits.failures <= 0) return { delayMs: 0, lockedNow: false, failures: 0 };
    const now = this.#now();
    const period = this.#limits.lockoutSeconds * 1000;
    let e = this.#table.get(key);
    if (e) this.#table.delete(key);
    // Quiet for a whole period since the last failure or the end of the last lockout: start afresh.
    if (!e || now - Math.max(e.lastFailureAt, e.lockedUntil) >= period) e = { failures: 0, lastFailureAt: 0, lockedUntil: 0 };
    e.failures++;
    e.lastFailureAt = now;
    const lockedNow = e.failures >= this.#limits.failures && now >= e.lockedUntil;
    if (lockedNow) e.lockedUntil = now + period;
    this.#table.set(key, e);
    if (this.#table.size > this.#tableSize) this.#table.delete(this.#table.keys().next().value!);
    return { delayMs: lockedNow ? 0 : delayFor(e.failures), lockedNow, failures: e.failures };
  }

  /** A right login from `key` (never asked while it is locked out): its failures are forgotten. */
  succeeded(key: string): void {
    this.#table.delete(key);
  }
}
