/**
 * A listener's connection as the hub sees it, whichever door it came in by:
 * write() returns false when the connection is backed up, and the hub stops
 * writing until `drain` is called. Adapters for uWS responses (HTTP_PORT)
 * and plain sockets (the Icecast-compatible door).
 */
import type { Socket } from 'node:net';
import type { HttpResponse } from 'uWebSockets.js';
import { plainFd } from '../core/native-addon.ts';
import { keepCounted, markAdmitted, type Kept } from './conn-limits.ts';
import type { Session } from './hub-client.ts';

export interface Sink {
  write(chunk: Buffer): boolean;
  close(): void;
  /** Set by the hub: called when a backed-up sink can take data again. */
  onDrain: (() => void) | null;
  /** Set by the hub: called once when the client goes away. */
  onClose: (() => void) | null;
  readonly closed: boolean;
  /** Bytes handed to the connection so far (the listener log's). */
  readonly bytes: number;
  /**
   * The descriptor native code may take the connection over by
   * (fan-send.ts: a plain TCP socket with nothing queued), else -1.
   */
  ownableFd(): number;
  /**
   * Native code holds a duplicate of ownableFd() now: lets this side's
   * socket go without ending the connection (onClose is not called), and
   * returns what stays of the listener here: `who`, and done(), to call
   * once with the bytes native code sent when the listener has left.
   */
  handedOver(who: Session | null): HandedOver;
}

/** What a stream's listener tells when it has ended, with the bytes it was sent (the listener log). */
export interface StreamEnd {
  streamed(bytes: number): void;
}

/**
 * A listener native code serves, as JavaScript keeps it: one small object
 * (a listener may keep it for hours, and thousands do), holding neither the
 * closed socket nor closures over it.
 */
export class HandedOver {
  readonly who: Session | null;
  readonly #end: StreamEnd | undefined;
  readonly #before: number;
  readonly #kept: Kept;

  /** `who` listens; `end` hears of its end; `before`: bytes sent before native code took over; `kept`: its place in the port's count. */
  constructor(who: Session | null, end: StreamEnd | undefined, before: number, kept: Kept) {
    this.who = who;
    this.#end = end;
    this.#before = before;
    this.#kept = kept;
  }

  done(bytes: number): void {
    this.#kept.release();
    this.#end?.streamed(this.#before + bytes);
  }
}

export class UwsSink implements Sink {
  readonly #res: HttpResponse;
  closed = false;
  bytes = 0;
  onDrain: (() => void) | null = null;
  onClose: (() => void) | null = null;

  /**
   * `res` must already have its status and headers written; the route's
   * onAborted handler (uWS keeps one per response) must call gone().
   */
  constructor(res: HttpResponse) {
    this.#res = res;
    res.onWritable(() => {
      this.onDrain?.();
      return true;
    });
  }

  gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.();
  }

  write(chunk: Buffer): boolean {
    if (this.closed) return true;
    this.bytes += chunk.length;
    let ok = true;
    // Writes from the hub run outside uWS's handler: they must be corked (uWS otherwise sends each write as its own segment, or aborts).
    this.#res.cork(() => {
      ok = this.#res.write(chunk);
    });
    return ok;
  }

  close(): void {
    if (this.closed) return;
    this.#res.close(); // runs onAborted, which reports the close
  }

  ownableFd(): number {
    return -1; // uWS owns its sockets
  }

  handedOver(): HandedOver {
    throw new Error('a uWS response cannot be handed over');
  }
}

export class SocketSink implements Sink {
  readonly #socket: Socket;
  /** The socket's descriptor; -1 for TLS, whose bytes only Node's TLS layer may write. */
  readonly #fd: number;
  readonly #end: StreamEnd | undefined;
  closed = false;
  bytes = 0;
  onDrain: (() => void) | null = null;
  onClose: (() => void) | null = null;

  /** `end` hears once that the listener has left, served here or by native code. */
  constructor(socket: Socket, end?: StreamEnd) {
    this.#socket = socket;
    this.#end = end;
    this.#fd = plainFd(socket);
    // A listener's stream: the connection is no longer counted as pending for its address.
    markAdmitted(socket);
    socket.on('drain', () => this.onDrain?.());
    socket.on('close', () => {
      // Also once handed over (closed then): native code reports that listener's end.
      if (this.closed) return;
      this.closed = true;
      this.onClose?.();
      this.#end?.streamed(this.bytes);
    });
  }

  write(chunk: Buffer): boolean {
    if (this.closed) return true;
    this.bytes += chunk.length;
    return this.#socket.write(chunk);
  }

  close(): void {
    this.#socket.destroy();
  }

  /*
   * Native code taking the descriptor also takes what Node would do with it
   * later: a listener's socket must have no idle timer, nothing corked and
   * nothing queued (writableLength 0, or bytes would overtake each other).
   */
  ownableFd(): number {
    const s = this.#socket;
    // A destroyed socket's descriptor may already belong to another connection.
    return this.#fd >= 0 && !this.closed && !s.destroyed && s.writableLength === 0 ? this.#fd : -1;
  }

  handedOver(who: Session | null): HandedOver {
    this.closed = true;
    const handed = new HandedOver(who, this.#end, this.bytes, keepCounted(this.#socket));
    // Closes this descriptor only: native code's duplicate keeps the connection open.
    this.#socket.destroy();
    return handed;
  }
}
