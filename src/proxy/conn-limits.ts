/**
 * Limits on the connections a worker accepts on the public ports, decided
 * at accept before a byte is read:
 *
 *   - open connections per port (MAX_CONNECTIONS): everything this worker
 *     holds on the port counts, listeners streaming included, whichever
 *     side serves them (the front door while it looks at the request, the
 *     Icecast-compatible door, uWS);
 *   - new connections per second per client address (CLIENT_CONN_RATE), a
 *     token bucket holding BURST_SECONDS of the rate, so that hundreds of
 *     listeners behind one NAT address reconnecting together still pass;
 *   - connections per client address not admitted yet (CLIENT_PENDING):
 *     the request head has not all arrived, or the request is being
 *     answered without having become a listener's stream or a source.
 *     This is what a client holding connections open cheaply (slowloris)
 *     runs into.
 *
 * The settings are for the whole node; each worker thread enforces its
 * share (workerShare). The kernel spreads connections over the workers by
 * a hash of addresses and ports, evenly for many connections and unevenly
 * for few, hence the slack in the share.
 *
 * An IPv6 client is counted by its /64, which one host commonly has to
 * itself. The table of addresses is bounded: when it is full, the eighth
 * seen least recently is forgotten (a Map keeps insertion order and every
 * use moves an entry to the end), which costs O(1) per connection on
 * average.
 */
import type { Socket } from 'node:net';
import { say, serialize } from './answers.ts';

/** The settings, for the whole node. */
export interface FrontLimits {
  /** Open connections per public port (MAX_CONNECTIONS). */
  maxConnections: number;
  /** New connections per second per client address; 0: no limit (CLIENT_CONN_RATE). */
  clientRate: number;
  /** Connections per client address not admitted yet; 0: no limit (CLIENT_PENDING). */
  clientPending: number;
  /** Worker threads that share them. */
  workers: number;
}

/** The rate's bucket holds this many seconds of it: a NAT full of listeners reconnecting at once passes. */
export const BURST_SECONDS = 10;
/** Client addresses one worker remembers (about 100 bytes each). */
export const CLIENT_ENTRIES = 16_384;

/** Why a connection is refused. */
export type Refusal = 'busy' | 'rate' | 'pending';

/**
 * One worker's share of a node-wide limit: a quarter more than an even
 * split (rounded up) when there are several workers, so that uneven
 * spreading does not refuse what the node as a whole would take.
 */
export function workerShare(total: number, workers: number): number {
  if (total <= 0) return 0;
  if (workers <= 1) return total;
  return Math.ceil((total / workers) * 1.25);
}

/** The key a client address is counted under: IPv4 as it is (also when mapped into IPv6), IPv6 by its /64. */
export function clientKey(addr: string): string {
  if (!addr.includes(':')) return addr;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped) return mapped[1]!;
  const [head = '', tail = ''] = addr.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = addr.includes('::') && tail !== '' ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return groups.slice(0, 4).map((g) => g.toLowerCase().padStart(4, '0')).join(':');
}

/** A client address's state in one worker. */
export interface ClientEntry {
  tokens: number;
  /** When the tokens were last topped up, ms. */
  at: number;
  /** Its connections not admitted yet. */
  pending: number;
}

export interface ClientLimits {
  /** New connections per second per address, this worker's share; 0: no limit. */
  rate: number;
  /** Not-admitted connections per address, this worker's share; 0: no limit. */
  pending: number;
  maxEntries?: number;
}

/** Per-address accounting of one worker: a token bucket of new connections and a count of pending ones. */
export class ClientTable {
  readonly #o: Required<ClientLimits>;
  readonly #burst: number;
  readonly #entries = new Map<string, ClientEntry>();

  constructor(o: ClientLimits) {
    this.#o = { maxEntries: CLIENT_ENTRIES, ...o };
    this.#burst = Math.max(1, o.rate * BURST_SECONDS);
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * A new connection from `addr` at `now` (ms): the entry it is counted in
   * (its pending count raised), or why it is refused. A refused attempt
   * costs the address no token, so a client that backs off gets in again.
   */
  open(addr: string, now: number): ClientEntry | Refusal {
    if (this.#o.rate <= 0 && this.#o.pending <= 0) return { tokens: 0, at: now, pending: 1 };
    const key = clientKey(addr);
    let e = this.#entries.get(key);
    if (e) this.#entries.delete(key);
    else {
      e = { tokens: this.#burst, at: now, pending: 0 };
      if (this.#entries.size >= this.#o.maxEntries) this.#evict();
    }
    this.#entries.set(key, e);
    if (this.#o.rate > 0) {
      e.tokens = Math.min(this.#burst, e.tokens + ((now - e.at) * this.#o.rate) / 1000);
      e.at = now;
      if (e.tokens < 1) return 'rate';
    }
    if (this.#o.pending > 0 && e.pending >= this.#o.pending) return 'pending';
    e.tokens -= 1;
    e.pending++;
    return e;
  }

  /**
   * Forgets the eighth of the table seen least recently, with one walk from
   * its start: deleting the first entry one at a time leaves holes that
   * every later walk from the start steps over again.
   */
  #evict(): void {
    let n = Math.max(1, this.#o.maxEntries >> 3);
    for (const key of this.#entries.keys()) {
      this.#entries.delete(key);
      if (--n === 0) break;
    }
  }

  /** One of `e`'s connections was admitted or closed before it was. */
  settle(e: ClientEntry): void {
    if (e.pending > 0) e.pending--;
  }
}

/**
 * What the Icecast-compatible door tells the front door about a connection
 * it serves: that it became a listener's stream or a source (admitted), set
 * per socket so that the door and the sinks need no other link to the
 * front door.
 */
const admissions = new WeakMap<Socket, () => void>();

/**
 * What keeps a connection counted on its port once native code holds its
 * descriptor and Node's socket is closed (fan-send.ts): set per socket by
 * the front door, which counts the port's connections by their sockets.
 */
const keepers = new WeakMap<Socket, Keeper>();

/** A connection kept counted without its socket, until release() (once). */
export interface Kept {
  release(): void;
}

/** What counts a socket's connection, and keeps it counted without the socket. */
export interface Keeper {
  keep(): Kept;
}

const NOT_COUNTED: Kept = { release: () => undefined };

/** Registers how to keep `sock`'s connection counted without the socket. */
export function onKept(sock: Socket, keeper: Keeper): void {
  keepers.set(sock, keeper);
}

/** `sock`'s connection goes on without it: it stays counted until release(). */
export function keepCounted(sock: Socket): Kept {
  const keeper = keepers.get(sock);
  keepers.delete(sock);
  return keeper ? keeper.keep() : NOT_COUNTED;
}

/** Registers what to run once when `sock` is admitted. */
export function onAdmitted(sock: Socket, run: () => void): void {
  admissions.set(sock, run);
}

/** `sock` is a listener's stream or a source from now on. */
export function markAdmitted(sock: Socket): void {
  const run = admissions.get(sock);
  if (!run) return;
  admissions.delete(sock);
  run();
}

/**
 * Requests admitted as soon as their head is read: sources and title
 * updates, whose logins the source gate checks (with its own lockout of
 * addresses that keep failing) and which a station may keep several of.
 */
export function admittedAtHead(method: string, path: string): boolean {
  return method === 'SOURCE' || method === 'PUT' || path.startsWith('/admin/');
}

/** The answer to a connection refused at accept: the request is not read, so HTTP/1.0, which every client reads. */
export const BUSY_ANSWER = Buffer.from(serialize(say('busy', [['Retry-After', '5']]), 'HTTP/1.0', false));
