/**
 * UDP sockets that receive and send in batches, through the
 * @radioai/udp-batch addon (native/udp-batch: recvmmsg/sendmmsg). node:dgram
 * pays a system call, a Buffer, an rinfo object with an address string and a
 * send request per datagram, which is most of the cost of a cached DNS
 * answer; here a whole batch costs two system calls and one call into
 * JavaScript. Without the addon (not built) the DNS server uses node:dgram.
 *
 * The addon also answers, without calling JavaScript, the questions
 * JavaScript has answered before (`learn`), until the snapshot's sequence
 * word moves; and it rate-limits every answer it sends, whoever made it.
 * Its counters and latency histogram are drained into the worker's own
 * (`BatchContext.drain`).
 */
import { loadAddon, type Loaded } from '../core/native-addon.ts';
import type { LatencyRecorder } from '../ipc/latency.ts';
import { S } from '../ipc/worker-stats.ts';
import type { Answer } from './answers.ts';
import type { LocalCounts } from './local-counts.ts';

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
  open: (address: string, port: number, onBatch: (n: number) => void, context: object) => NativeSocket;
  send: (handle: object, n: number) => number;
  close: (handle: object) => void;
  context: (seq: Int32Array, seqIndex: number, rate: number, slip: number, maxPrefixes: number) => { handle: object; stats: ArrayBuffer };
  learn: (handle: object, slot: number, flags: number, counts: readonly number[], rotations: Buffer[], truncatedCounts: readonly number[], truncated: Buffer, turn: number) => boolean;
}

let loaded: Loaded<Addon> | undefined;

/** The addon, or null with the reason in `batchUnavailable()`. */
function load(): Addon | null {
  return (loaded ??= loadAddon<Addon>('@radioai/udp-batch', 'RADIOAI_DNS_UDP', 'dgram')).addon;
}

/** Whether the addon answers the questions it learned without JavaScript (RADIOAI_DNS_ANSWERS=off: it does not). */
export function nativeAnswers(): boolean {
  return process.env.RADIOAI_DNS_ANSWERS !== 'off';
}

/** Null when batched UDP is available, else why not. */
export function batchUnavailable(): string | null {
  return load() ? null : loaded!.why;
}

/** The addon's counter words, in the order of native/udp-batch (C_*), and the worker's words they add to. */
const NATIVE_COUNTS = [S.DNS_QUERIES, S.DNS_NXDOMAIN, S.DNS_REFUSED, S.DNS_TRUNCATED, S.DNS_RRL_DROPPED, S.DNS_RRL_SLIPPED, S.DNS_NATIVE] as const;
/** Where the addon's latency histogram starts, and its words: µs below 128 one each, then 64 per power of two. */
const LAT_BASE = 16;
const LAT_WORDS = 128 + 16 * 64;

/** The value a latency word of the addon stands for (its bucket's lower end). */
export function latencyOfWord(word: number): number {
  if (word < 128) return word;
  const e = 1 + Math.floor((word - 128) / 64);
  return (64 + ((word - 128) % 64)) * 2 ** e;
}

/** What the sockets of one DNS server share in the addon: the answers it learned, rate limiting, counters. */
export class BatchContext {
  readonly handle: object;
  /** Whether the addon is taught answers to give without JavaScript (`UdpBatch.learn`). */
  readonly learning: boolean;
  readonly #stats: Float64Array;

  /**
   * `seq`: the snapshot's sequence word (the answers are forgotten when it moves); `rate` answers per
   * second per client prefix (0: no limit), every `slip`-th limited one sent truncated, `maxPrefixes` tracked.
   */
  constructor(seq: { words: Int32Array; index: number }, rate: number, slip: number, maxPrefixes: number, learning: boolean) {
    const a = load();
    if (!a) throw new Error(`batched UDP unavailable: ${loaded!.why}`);
    const c = a.context(seq.words, seq.index, rate, slip, maxPrefixes);
    this.handle = c.handle;
    this.learning = learning;
    this.#stats = new Float64Array(c.stats);
  }

  /** Adds what the addon counted since the last call to the worker's counters and latency histogram. */
  drain(counts: LocalCounts, latency?: LatencyRecorder): void {
    const st = this.#stats;
    for (let i = 0; i < NATIVE_COUNTS.length; i++) {
      if (st[i] !== 0) {
        counts.addMany(NATIVE_COUNTS[i]!, st[i]!);
        st[i] = 0;
      }
    }
    for (let w = 0; w < LAT_WORDS; w++) {
      const n = st[LAT_BASE + w]!;
      if (n === 0) continue;
      st[LAT_BASE + w] = 0;
      latency?.record('dns_answer_us', latencyOfWord(w), n);
    }
  }
}

export class UdpBatch {
  /** Received datagrams, one per `slot` bytes. */
  readonly in: Buffer;
  /** Length of each received datagram; 0 when it was larger than a slot. */
  readonly lens: Uint32Array;
  /** Each sender's sockaddr, 28 bytes apart (room for a sockaddr_in6). */
  readonly addrs: Uint8Array;
  /** Answers, packed by the caller. */
  readonly out: Buffer;
  /** Per answer to send: offset in `out`, length, sender slot. */
  readonly meta: Uint32Array;
  readonly slot: number;
  readonly batch: number;
  readonly #addon: Addon;
  /** Whether `learn` keeps anything. */
  readonly learning: boolean;
  readonly #handle: object;
  #closed = false;

  /**
   * Binds address:port (SO_REUSEPORT) and calls `onBatch(this, n)` for every batch of n datagrams
   * of which at least one is left to JavaScript (the others have length 0 in `lens`).
   */
  constructor(address: string, port: number, context: BatchContext, onBatch: (b: UdpBatch, n: number) => void) {
    const a = load();
    if (!a) throw new Error(`batched UDP unavailable: ${loaded!.why}`);
    this.#addon = a;
    this.learning = context.learning;
    const s = a.open(address, port, (n) => onBatch(this, n), context.handle);
    this.#handle = s.handle;
    this.in = Buffer.from(s.in);
    this.lens = new Uint32Array(s.lens);
    this.addrs = new Uint8Array(s.addrs);
    this.out = Buffer.from(s.out);
    this.meta = new Uint32Array(s.meta);
    this.slot = s.slot;
    this.batch = s.batch;
  }

  /**
   * Teaches the addon `a`, the answer to the question of datagram `slot` of the batch under way, so
   * that it answers the next datagrams asking the same itself, going on from `a`'s turn. Returns
   * whether it kept it.
   */
  learn(slot: number, a: Answer): boolean {
    return this.learning && !this.#closed && this.#addon.learn(this.#handle, slot, a.flags, a.counts, a.rotations, a.truncated.counts, a.truncated.rrs, a.turn);
  }

  /** Sends the first `n` answers of `meta`, past rate limiting; returns how many the kernel took. */
  send(n: number): number {
    return this.#closed || n === 0 ? 0 : this.#addon.send(this.#handle, n);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.close(this.#handle);
  }
}
