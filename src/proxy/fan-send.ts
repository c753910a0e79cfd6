/**
 * One piece of a stream sent to many listeners' sockets with one call, through
 * the @radioai/fan-send addon (native/fan-send: a loop of send(2) with
 * MSG_DONTWAIT). A write through node:net walks the Writable stream's state,
 * a write request and its callbacks before the one system call that does the
 * work, and at thousands of listeners that walk cost as much CPU as the
 * kernel's TCP path. Only sockets whose Node stream has nothing queued are
 * batched (sink.ts `directFd`), so bytes never overtake each other; what a
 * full socket did not take goes to the Node stream, which owns the
 * descriptor's writes again until it drains.
 *
 * Without the addon (not built), or with RADIOAI_FAN_SEND=stream, every write
 * goes through Node's streams as before.
 */
import { loadAddon, type Loaded } from '../core/native-addon.ts';

interface Addon {
  sendAll: (fds: Int32Array, count: number, data: Uint8Array, results: Int32Array) => void;
}

let loaded: Loaded<Addon> | undefined;

function load(): Addon | null {
  return (loaded ??= loadAddon<Addon>('@radioai/fan-send', 'RADIOAI_FAN_SEND', 'stream')).addon;
}

/** Null when batched sends are available, else why not. */
export function fanSendUnavailable(): string | null {
  return load() ? null : loaded!.why;
}

/**
 * Descriptors (with the item each stands for) gathered for one send: add()
 * while walking the listeners, then send() once and read each result.
 */
export class SendBatch<T> {
  readonly #addon: Addon;
  #fds = new Int32Array(64);
  #results = new Int32Array(64);
  #items: (T | undefined)[] = [];
  #count = 0;

  /** A batch, or null when sends cannot be batched here. */
  static create<T>(): SendBatch<T> | null {
    const a = load();
    return a ? new SendBatch<T>(a) : null;
  }

  private constructor(a: Addon) {
    this.#addon = a;
  }

  add(item: T, fd: number): void {
    const n = this.#count;
    if (n === this.#fds.length) {
      const fds = new Int32Array(n * 2);
      fds.set(this.#fds);
      this.#fds = fds;
      this.#results = new Int32Array(n * 2);
    }
    this.#fds[n] = fd;
    this.#items[n] = item;
    this.#count = n + 1;
  }

  /** Sends `data` to every descriptor added; returns how many, whose items and results take() and result() then give. */
  send(data: Uint8Array): number {
    const n = this.#count;
    this.#count = 0;
    if (n > 0) this.#addon.sendAll(this.#fds, n, data, this.#results);
    return n;
  }

  /** The i-th item of the last send, forgotten here (the batch keeps no listener alive). */
  take(i: number): T {
    const item = this.#items[i]!;
    this.#items[i] = undefined;
    return item;
  }

  /** Bytes sent to the i-th descriptor of the last send, or -errno. */
  result(i: number): number {
    return this.#results[i]!;
  }
}
