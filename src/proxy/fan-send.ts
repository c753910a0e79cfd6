/**
 * A hub's plain-TCP listeners owned by native code (native/fan-send): the
 * descriptor, the place in the stream, ICY metadata, backpressure and the
 * close all live there, and each new piece of the stream reaches every
 * caught-up listener with one send(2) from one call out of JavaScript.
 *
 * Through node:net a listener cost a Socket and its stream state (several
 * KiB of heap each) and every piece walked Node's Writable machinery once
 * per listener before the system call that does the work. A listener handed
 * to a crowd costs a small native record, and the JavaScript side keeps only
 * what the listener log and `radioctl listeners` need.
 *
 * TLS connections (their bytes are Node's TLS layer's to write), uWS's, and
 * everything when the addon is not built or RADIOAI_FAN_SEND=stream, stay
 * on Node's streams (fanout.ts).
 */
import { loadAddon, type Loaded } from '../core/native-addon.ts';

interface Addon {
  crowd: (cap: number, metaint: number, closed: (id: number, bytes: number) => void) => object;
  add: (crowd: object, fd: number, pos: number, first: Uint8Array, icy: boolean) => number;
  append: (crowd: object, data: Uint8Array) => number;
  meta: (crowd: object, block: Uint8Array) => void;
  close: (crowd: object, id: number) => number;
  free: (crowd: object) => void;
  trim: () => boolean;
}

let loaded: Loaded<Addon> | undefined;

function load(): Addon | null {
  return (loaded ??= loadAddon<Addon>('@radioai/fan-send', 'RADIOAI_FAN_SEND', 'stream')).addon;
}

/** Null when listeners can be handed to native code, else why not. */
export function fanSendUnavailable(): string | null {
  return load() ? null : loaded!.why;
}

const NO_BYTES = new Uint8Array(0);

/** After a burst of hand-overs, how long without one before the freed memory is given back. */
const TRIM_AFTER_MS = 2000;
let trimTimer: NodeJS.Timeout | null = null;

/**
 * Gives back to the system, once hand-overs have paused, the memory freed
 * with the node:net sockets they replaced (malloc keeps freed memory for
 * later by default, and a worker's arena only grows during a crowd's
 * arrival).
 */
function trimSoon(a: Addon): void {
  if (trimTimer) trimTimer.refresh();
  else {
    trimTimer = setTimeout(() => {
      trimTimer = null;
      a.trim();
    }, TRIM_AFTER_MS);
    trimTimer.unref();
  }
}

/** One hub's listeners in native code. */
export class Crowd {
  readonly #addon: Addon;
  readonly #handle: object;
  #freed = false;

  /**
   * A crowd whose ring holds `capBytes` of the stream (at least what the
   * hub's own ring holds, so that a listener can start wherever the hub
   * says), or null when there is no addon. `closed(id, bytes)` hears of
   * each listener that left by itself or was let go for lagging.
   */
  static create(capBytes: number, metaint: number, closed: (id: number, bytes: number) => void): Crowd | null {
    const a = load();
    return a ? new Crowd(a, a.crowd(Math.max(4096, capBytes), metaint, closed)) : null;
  }

  private constructor(a: Addon, handle: object) {
    this.#addon = a;
    this.#handle = handle;
  }

  /**
   * Takes a duplicate of `fd`, which starts with `first` and then the stream
   * from offset `pos`; returns its id, or -1 when it could not be taken (the
   * caller's descriptor is then untouched and still the caller's).
   */
  add(fd: number, pos: number, first: Uint8Array | null, icy: boolean): number {
    if (this.#freed) return -1;
    const id = this.#addon.add(this.#handle, fd, pos, first ?? NO_BYTES, icy);
    if (id >= 0) trimSoon(this.#addon);
    return id;
  }

  /** Puts a piece of the stream in the ring and sends it; returns bytes sent since the last call. */
  append(data: Uint8Array): number {
    if (this.#freed) return 0;
    return this.#addon.append(this.#handle, data);
  }

  /** The ICY metadata block (icy.ts icyBlock) listeners get from now on. */
  meta(block: Uint8Array): void {
    if (!this.#freed) this.#addon.meta(this.#handle, block);
  }

  /** Lets listener `id` go; the bytes it was sent, or -1 if it had gone already. */
  close(id: number): number {
    return this.#freed ? -1 : this.#addon.close(this.#handle, id);
  }

  /** Lets every listener go; nothing is reported, and the crowd does nothing from then on. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#addon.free(this.#handle);
  }
}
