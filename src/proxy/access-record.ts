/**
 * The listener log, the worker's half: one line per finished listener
 * request (a stream that ended, or the redirect or refusal it got),
 * formatted here (access-line.ts) and added to one string that is handed to
 * the main thread once a second, which only appends it to the file
 * (metrics/access-log.ts): one string crosses the thread boundary instead of
 * an object per request, and the formatting is spread over the workers.
 *
 * The client's address is the socket's, or the last address in
 * X-Forwarded-For that is not a trusted proxy when the socket's own
 * address is one (TRUSTED_PROXIES): a client can put anything in the header,
 * so it is believed only as far back as the chain of trusted proxies goes.
 */
import { BlockList, isIP } from 'node:net';
import { accessLine } from './access-line.ts';

/** Entries waiting for the next hand-over; past this many, new ones are counted and dropped. */
export const MAX_PENDING = 20_000;
export const FLUSH_MS = 1000;

/** Parses TRUSTED_PROXIES entries (addresses and CIDR prefixes, IPv4 or IPv6) into a lookup. */
export function trustedProxies(list: readonly string[]): BlockList {
  const b = new BlockList();
  for (const item of list) {
    const [addr, bits] = item.split('/') as [string, string | undefined];
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) b.addAddress(addr, family);
    else b.addSubnet(addr, Number(bits), family);
  }
  return b;
}

/** An IPv4 address as IPv4 however the socket spells it (`::ffff:1.2.3.4`, or uWS's `0000:...:ffff:0102:0304`). */
export function plain(a: string): string {
  const long = /^(?:0000:){5}ffff:([0-9a-f]{4}):([0-9a-f]{4})$/i.exec(a);
  if (long) {
    const [hi, lo] = [parseInt(long[1]!, 16), parseInt(long[2]!, 16)];
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return a.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

function trusted(list: BlockList, a: string): boolean {
  const v = isIP(a);
  return v !== 0 && list.check(a, v === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The address a listener is logged under: `peer` (the socket's), unless it
 * is a trusted proxy and `forwarded` (X-Forwarded-For) names others, then
 * the nearest one that is not a trusted proxy.
 */
export function clientAddress(peer: string, forwarded: string | undefined, list: BlockList): string {
  let client = plain(peer);
  if (forwarded === undefined || !trusted(list, client)) return client;
  const hops = forwarded.split(',').map((h) => plain(h.trim())).filter((h) => h !== '');
  for (let i = hops.length - 1; i >= 0; i--) {
    const h = hops[i]!;
    if (isIP(h) === 0) break;
    client = h;
    if (!trusted(list, h)) break;
  }
  return client;
}

export class AccessBatch {
  #lines = '';
  #count = 0;
  readonly #send: (lines: string, count: number, dropped: number) => void;
  readonly #timer: NodeJS.Timeout;
  #dropped = 0;
  /** Whether anyone wants the lines (ACCESS_LOG not empty). */
  readonly enabled: boolean;

  constructor(enabled: boolean, send: (lines: string, count: number, dropped: number) => void) {
    this.enabled = enabled;
    this.#send = send;
    this.#timer = setInterval(() => this.flush(), FLUSH_MS);
    this.#timer.unref();
  }

  /** Counts `n` lines made elsewhere and dropped there (native code's), with those dropped here. */
  drop(n: number): void {
    if (this.enabled) this.#dropped += n;
  }

  /** Adds one line (ending in a newline). */
  push(line: string): void {
    if (!this.enabled) return;
    if (this.#count >= MAX_PENDING) {
      this.#dropped++;
      return;
    }
    this.#lines += line;
    this.#count++;
  }

  flush(): void {
    if (this.#count === 0 && this.#dropped === 0) return;
    const [lines, count, dropped] = [this.#lines, this.#count, this.#dropped];
    this.#lines = '';
    this.#count = 0;
    this.#dropped = 0;
    this.#send(lines, count, dropped);
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}

/** Longest text kept of a client's request line, referer or user agent: a batch stays small whatever clients send. */
const MAX_TEXT = 512;
const cut = (s: string | undefined): string => (s === undefined ? '' : s.length > MAX_TEXT ? s.slice(0, MAX_TEXT) : s);

/** A finished listener request as a door knows it. */
export interface Finished {
  /** The listener's address, as `address()` gives it. */
  address: string;
  /** `GET /live.ogg HTTP/1.1` */
  request: string;
  status: number;
  bytes: number;
  referer?: string | undefined;
  userAgent?: string | undefined;
  /** When the request came (Unix ms). */
  since: number;
}

/**
 * One listener request while it lasts, as the listener log will get it and
 * as `radioctl listeners` shows it (a Session: address, userAgent, since):
 * one small object, since a stream's listener keeps it as long as it
 * listens.
 */
export class ListenerEntry {
  readonly log: ListenerLog | undefined;
  readonly address: string;
  readonly request: string;
  readonly referer: string | undefined;
  readonly userAgent: string;
  readonly since: number;

  constructor(log: ListenerLog | undefined, address: string, request: string, referer: string | undefined, userAgent: string | undefined, since: number) {
    this.log = log;
    this.address = address;
    this.request = request;
    this.referer = referer;
    this.userAgent = userAgent ?? '';
    this.since = since;
  }

  /** The request ended with `status` after `bytes` of answer. */
  end(status: number, bytes: number): void {
    this.log?.note({ address: this.address, request: this.request, status, bytes, referer: this.referer, userAgent: this.userAgent, since: this.since });
  }

  /** A stream ended after `bytes`. */
  streamed(bytes: number): void {
    this.end(200, bytes);
  }
}

/** What the doors call when a listener request ends. */
export class ListenerLog {
  readonly #batch: AccessBatch;
  readonly #trusted: BlockList;
  readonly #node: string;

  /** `node` is this node's name, the lines' second field. */
  constructor(batch: AccessBatch, trusted: BlockList, node: string) {
    this.#batch = batch;
    this.#trusted = trusted;
    this.#node = node;
  }

  get enabled(): boolean {
    return this.#batch.enabled;
  }

  /** The address a listener is shown and logged under (clientAddress with TRUSTED_PROXIES). */
  address(peer: string, forwarded: string | undefined): string {
    return clientAddress(peer, forwarded, this.#trusted);
  }

  /** Lines that could not be kept before they reached note(), to be counted as dropped. */
  dropped(n: number): void {
    this.#batch.drop(n);
  }

  /** `at`: when it ended (Unix ms), now unless given. */
  note(f: Finished, at = Date.now()): void {
    if (!this.#batch.enabled) return;
    this.#batch.push(accessLine({
      at, address: f.address, request: cut(f.request), status: f.status, bytes: f.bytes,
      referer: cut(f.referer), userAgent: cut(f.userAgent), seconds: Math.max(0, (at - f.since) / 1000),
    }, this.#node));
  }
}
