/**
 * UDP sockets that receive and send in batches, through the
 * @radioai/udp-batch addon (native/udp-batch: recvmmsg/sendmmsg). node:dgram
 * pays a system call, a Buffer, an rinfo object with an address string and a
 * send request per datagram, which is most of the cost of a cached DNS
 * answer; here a whole batch costs two system calls and one call into
 * JavaScript. Without the addon (not built) the DNS server uses node:dgram.
 */
import { loadAddon, type Loaded } from '../core/native-addon.ts';

interface NativeSocket {
  handle: object;
  in: ArrayBuffer;
  lens: ArrayBuffer;
  addrs: ArrayBuffer;
  out: ArrayBuffer;
  meta: ArrayBuffer;
  batch: number;
  slot: number;
}

interface Addon {
  open: (address: string, port: number, onBatch: (n: number) => void) => NativeSocket;
  send: (handle: object, n: number) => number;
  close: (handle: object) => void;
}

/** Bytes per sender address slot (a sockaddr_in6). */
export const ADDR_BYTES = 28;
const AF_INET = 2;
const AF_INET6 = 10;

let loaded: Loaded<Addon> | undefined;

/** The addon, or null with the reason in `batchUnavailable()`. */
function load(): Addon | null {
  return (loaded ??= loadAddon<Addon>('@radioai/udp-batch', 'RADIOAI_DNS_UDP', 'dgram')).addon;
}

/** Null when batched UDP is available, else why not. */
export function batchUnavailable(): string | null {
  return load() ? null : loaded!.why;
}

export class UdpBatch {
  /** Received datagrams, one per `slot` bytes. */
  readonly in: Buffer;
  /** Length of each received datagram; 0 when it was larger than a slot. */
  readonly lens: Uint32Array;
  /** Each sender's sockaddr, ADDR_BYTES apart. */
  readonly addrs: Uint8Array;
  /** Answers, packed by the caller. */
  readonly out: Buffer;
  /** Per answer to send: offset in `out`, length, sender slot. */
  readonly meta: Uint32Array;
  readonly slot: number;
  readonly batch: number;
  readonly #addon: Addon;
  readonly #handle: object;
  #closed = false;

  /** Binds address:port (SO_REUSEPORT) and calls `onBatch(this, n)` for every batch of n datagrams. */
  constructor(address: string, port: number, onBatch: (b: UdpBatch, n: number) => void) {
    const a = load();
    if (!a) throw new Error(`batched UDP unavailable: ${loaded!.why}`);
    this.#addon = a;
    const s = a.open(address, port, (n) => onBatch(this, n));
    this.#handle = s.handle;
    this.in = Buffer.from(s.in);
    this.lens = new Uint32Array(s.lens);
    this.addrs = new Uint8Array(s.addrs);
    this.out = Buffer.from(s.out);
    this.meta = new Uint32Array(s.meta);
    this.slot = s.slot;
    this.batch = s.batch;
  }

  /** Sends the first `n` answers of `meta`; returns how many the kernel took. */
  send(n: number): number {
    return this.#closed || n === 0 ? 0 : this.#addon.send(this.#handle, n);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.close(this.#handle);
  }
}

/**
 * The response-rate-limiting key of the sender in slot `i`: the /24 of an
 * IPv4 address as a number, the /56 of an IPv6 address as 14 hex digits
 * (the same keys `prefixKey` gives for address strings).
 */
export function senderKey(addrs: Uint8Array, i: number): number | string {
  const o = i * ADDR_BYTES;
  const family = addrs[o]! | (addrs[o + 1]! << 8);
  if (family === AF_INET) return addrs[o + 4]! * 65536 + addrs[o + 5]! * 256 + addrs[o + 6]!;
  if (family === AF_INET6) {
    let hex = '';
    for (let k = 8; k < 15; k++) hex += addrs[o + k]!.toString(16).padStart(2, '0');
    return hex;
  }
  return -1;
}
