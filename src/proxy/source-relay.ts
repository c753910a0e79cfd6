/**
 * A carried source's steady state in native code (native/source-relay):
 * while the upstream has taken the source and nothing unusual happens, each
 * piece the program sends goes from its connection to the master's Icecast
 * with one recv(2) and one send(2), and never wakes JavaScript.
 *
 * The carrier (source-carry.ts) keeps both node:net sockets and every
 * decision. It lends the descriptors: the program's socket stops reading
 * (its handle is stopped while node:net believes it reads, so that nothing
 * in Node starts it again), the upstream's is left as it is (Icecast says
 * nothing to a source after its answer, so Node's read there only ever sees
 * the upstream close), and the addon works on duplicates. When the addon
 * stops by itself (the program ended or reset, the upstream failed) or the
 * carrier takes the relay back (its upstream closed, the master moved, the
 * source is dropped), the program's socket reads again and the carrier gets
 * what was read and not yet written, so that not a byte is lost or
 * reordered.
 *
 * Chunked uploads and Ogg streams stay in JavaScript: the one is decoded,
 * the other split into pages whose codec headers a new upstream needs. So
 * do TLS connections, and every source when the addon is not built or
 * RADIOAI_SOURCE_RELAY=off.
 */
import type { Socket } from 'node:net';
import { loadAddon, plainFd, type Loaded } from '../core/native-addon.ts';

/** Why the relay stopped by itself: the program's side ended or failed, the upstream failed, or the relay could not go on. */
export const RELAY_STOPPED = { program: 1, upstream: 2, relay: 3 } as const;
export type RelayStop = (typeof RELAY_STOPPED)[keyof typeof RELAY_STOPPED];

interface Addon {
  relay: (inFd: number, outFd: number, stopped: (leftover: Buffer | null, why: number) => void) => object;
  take: (relay: object) => Buffer | null;
}

let loaded: Loaded<Addon> | undefined;

function load(): Addon | null {
  return (loaded ??= loadAddon<Addon>('@radioai/source-relay', 'RADIOAI_SOURCE_RELAY', 'off')).addon;
}

/** Null when sources can be carried by native code, else why not. */
export function sourceRelayUnavailable(): string | null {
  return load() ? null : loaded!.why;
}

interface ReadHandle {
  reading?: boolean;
  readStop?: () => number;
  readStart?: () => number;
}

const EMPTY = Buffer.alloc(0);

/** Relays running in this thread. */
let running = 0;

/** How many sources native code carries in this thread now. */
export function relaysRunning(): number {
  return running;
}

function handleOf(sock: Socket): ReadHandle | null {
  return (sock as unknown as { _handle?: ReadHandle | null })._handle ?? null;
}

/**
 * Stops `sock` reading while node:net goes on believing it reads: its
 * `_read()` starts the handle only when `reading` is false, so no resume,
 * read(0) or new listener starts it behind the relay's back.
 */
function quiet(sock: Socket): boolean {
  const h = handleOf(sock);
  return h?.reading === true && typeof h.readStop === 'function' && typeof h.readStart === 'function' && h.readStop() === 0;
}

/** Lets node:net read `sock` again. */
function wake(sock: Socket): void {
  const h = handleOf(sock);
  if (!sock.destroyed && h?.reading === true) h.readStart?.();
}

export class SourceRelay {
  readonly #addon: Addon;
  readonly #client: Socket;
  #handle: object | null = null;

  /**
   * Relays what `client` sends to `up`, or returns null when it cannot:
   * no addon, TLS, or a socket that is not reading with nothing queued
   * (the caller checks its own state: nothing of its own waiting either).
   * `stopped(leftover, why)` hears when the relay stopped by itself; the
   * client's socket reads again first.
   */
  static start(client: Socket, up: Socket, stopped: (leftover: Buffer, why: RelayStop) => void): SourceRelay | null {
    const a = load();
    const inFd = plainFd(client);
    const outFd = plainFd(up);
    if (!a || inFd < 0 || outFd < 0 || client.readableLength > 0 || client.isPaused() || up.writableLength > 0 || up.destroyed) return null;
    if (!quiet(client)) return null;
    const r = new SourceRelay(a, client);
    try {
      r.#handle = a.relay(inFd, outFd, (leftover, why) => {
        r.#handle = null;
        running--;
        wake(client);
        stopped(leftover ?? EMPTY, why as RelayStop);
      });
    } catch {
      wake(client);
      return null;
    }
    running++;
    return r;
  }

  private constructor(a: Addon, client: Socket) {
    this.#addon = a;
    this.#client = client;
  }

  /** Whether the relay still runs (it has neither stopped by itself nor been taken back). */
  get running(): boolean {
    return this.#handle !== null;
  }

  /** Stops the relay; the client's socket reads again. What was read and not yet written. */
  take(): Buffer {
    const h = this.#handle;
    if (h === null) return EMPTY;
    this.#handle = null;
    running--;
    const left = this.#addon.take(h);
    wake(this.#client);
    return left ?? EMPTY;
  }
}
