/**
 * Response rate limiting for UDP (after BIND's RRL): each client prefix
 * (/24 for IPv4, /56 for IPv6) gets `rate` responses per second with a
 * burst of one second's worth. Beyond it responses are dropped, except that
 * every `slip`-th one is sent truncated (TC, no records) so that a real
 * client behind a spoofed flood can still get its answer over TCP, while
 * the server cannot be used to amplify traffic toward a victim.
 */

interface Bucket {
  tokens: number;
  at: number;
  dropped: number;
}

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

/** The prefix as a map key: IPv4 /24 as a number (as `senderKey` reads it from a sockaddr), IPv6 /56 as hex. */
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
  readonly #buckets = new Map<number | string, Bucket>();
  #lastSweep = 0;
  dropped = 0;
  slipped = 0;

  /** `rate` responses per second per prefix; 0 turns limiting off. */
  constructor(rate: number, slip = 2) {
    this.#rate = rate;
    this.#slip = slip;
  }

  check(addr: string, now: number): RrlVerdict {
    return this.#rate <= 0 ? 'answer' : this.checkKey(prefixKey(addr), now);
  }

  /** `check` for a prefix key already known (`prefixKey`, `senderKey`). */
  checkKey(key: number | string, now: number): RrlVerdict {
    if (this.#rate <= 0) return 'answer';
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: this.#rate, at: now, dropped: 0 };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.#rate, b.tokens + ((now - b.at) * this.#rate) / 1000);
      b.at = now;
    }
    if (now - this.#lastSweep > 10_000) this.#sweep(now);
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

  /** Forget prefixes that have been quiet long enough to refill. */
  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [k, b] of this.#buckets) if (now - b.at > 2000) this.#buckets.delete(k);
  }
}
