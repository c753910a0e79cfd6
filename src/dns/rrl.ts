/**
 * Response rate limiting for UDP (after BIND's RRL): each client prefix
 * (/24 for IPv4, /56 for IPv6) gets `rate` responses per second with a
 * burst of one second's worth. Beyond it responses are dropped, except that
 * every `slip`-th one is sent truncated (TC, no records) so that a real
 * client behind a spoofed flood can still get its answer over TCP, while
 * the server cannot be used to amplify traffic toward a victim.
 *
 * The source of a UDP query is not checked, so the table of prefixes is
 * bounded (`maxEntries`) and forgotten bit by bit: a flood from millions of
 * spoofed prefixes must neither grow memory nor stall the worker in one
 * long sweep.
 */

interface Bucket {
  key: number | string;
  tokens: number;
  at: number;
  dropped: number;
}

export interface RrlOptions {
  /** Every `slip`-th limited response is sent truncated; 0: never. */
  slip?: number;
  /** Prefixes tracked at most (about 90 bytes each). */
  maxEntries?: number;
  /** Entries looked at by one sweep step, one step per `SWEEP_EVERY_MS` at most. */
  sweepStep?: number;
}

/** Prefixes tracked per worker by default: about 9 MB, more than the distinct resolvers one node hears in a few seconds. */
export const RRL_ENTRIES = 100_000;
/** Every second limited response is sent truncated (BIND's default). */
export const RRL_SLIP = 2;
/** A quiet prefix is forgotten after this long: its bucket has refilled, so a fresh one is the same. */
const QUIET_MS = 2000;
/** How often a sweep step runs (on the query path, so a worker that gets no query does no work). */
const SWEEP_EVERY_MS = 50;

export type RrlVerdict = 'answer' | 'drop' | 'slip';

/** The rate-limited prefix of an address: /24 of IPv4, /56 of IPv6. */
export function prefixOf(addr: string): string {
  if (!addr.includes(':')) return addr.slice(0, addr.lastIndexOf('.'));
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+)\.\d+$/i.exec(addr);
  if (v4mapped) return v4mapped[1]!;
  const [head = '', tail = ''] = addr.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = addr.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t].map((g) => g.padStart(4, '0'));
  return groups.join('').slice(0, 14); // 56 bits = 14 hex digits
}

/** The prefix as a map key: IPv4 /24 as a number, IPv6 /56 as hex. */
export function prefixKey(addr: string): number | string {
  const p = prefixOf(addr);
  if (p.includes('.')) {
    const [a = 0, b = 0, c = 0] = p.split('.').map(Number);
    return a * 65536 + b * 256 + c;
  }
  return p;
}

export class Rrl {
  readonly #rate: number;
  readonly #slip: number;
  readonly #max: number;
  readonly #step: number;
  readonly #buckets = new Map<number | string, Bucket>();
  /**
   * Prefixes that find the table full share this one bucket. Being limited together is the safe side:
   * answering them freely would let a flood that fills the table turn the server into an amplifier again
   * (for the victim's prefix too), while a limited real client still gets every `slip`-th answer
   * truncated and retries over TCP, which is not rate limited.
   */
  readonly #overflow: Bucket;
  /** Where the incremental sweep stands: an iterator over the table, new entries are met at its end. */
  #cursor: Iterator<Bucket> | null = null;
  #lastStep = 0;
  dropped = 0;
  slipped = 0;
  /** Responses that met a full table and were charged to the shared bucket. */
  overflowed = 0;
  /** Entries the last sweep step looked at, and how many sweep steps ran. */
  lastStepExamined = 0;
  steps = 0;

  /** `rate` responses per second per prefix; 0 turns limiting off. */
  constructor(rate: number, o: RrlOptions = {}) {
    this.#rate = rate;
    this.#slip = o.slip ?? RRL_SLIP;
    this.#max = Math.max(1, o.maxEntries ?? RRL_ENTRIES);
    // A whole pass within about QUIET_MS at one step per SWEEP_EVERY_MS, so forgotten prefixes make room steadily.
    this.#step = o.sweepStep ?? Math.max(1000, Math.ceil(this.#max / (QUIET_MS / SWEEP_EVERY_MS)));
    this.#overflow = { key: -1, tokens: rate, at: 0, dropped: 0 };
  }

  /** Prefixes tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  check(addr: string, now: number): RrlVerdict {
    return this.#rate <= 0 ? 'answer' : this.checkKey(prefixKey(addr), now);
  }

  /** `check` for a prefix key already known (`prefixKey`). */
  checkKey(key: number | string, now: number): RrlVerdict {
    if (this.#rate <= 0) return 'answer';
    if (now - this.#lastStep >= SWEEP_EVERY_MS) this.sweepStep(now);
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size < this.#max) {
        b = { key, tokens: this.#rate, at: now, dropped: 0 };
        this.#buckets.set(key, b);
      } else {
        this.overflowed++;
        b = this.#refill(this.#overflow, now);
      }
    } else this.#refill(b, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 'answer';
    }
    b.dropped++;
    if (this.#slip > 0 && b.dropped % this.#slip === 0) {
      this.slipped++;
      return 'slip';
    }
    this.dropped++;
    return 'drop';
  }

  #refill(b: Bucket, now: number): Bucket {
    b.tokens = Math.min(this.#rate, b.tokens + ((now - b.at) * this.#rate) / 1000);
    b.at = now;
    return b;
  }

  /**
   * One step of the sweep: looks at no more than `sweepStep` entries from where the last step stopped
   * and forgets the quiet ones. Returns how many it looked at.
   */
  sweepStep(now: number): number {
    this.#lastStep = now;
    this.steps++;
    let n = 0;
    while (n < this.#step) {
      this.#cursor ??= this.#buckets.values();
      const r = this.#cursor.next();
      if (r.done === true) {
        this.#cursor = null;
        break;
      }
      n++;
      const b = r.value;
      if (now - b.at > QUIET_MS) this.#buckets.delete(b.key);
    }
    this.lastStepExamined = n;
    return n;
  }
}
