/**
 * A listener's connection as the hub sees it, whichever door it came in by:
 * write() returns false when the connection is backed up, and the hub stops
 * writing until `drain` is called. Adapters for uWS responses (HTTP_PORT)
 * and plain sockets (the Icecast-compatible door).
 */
import type { Socket } from 'node:net';
import type { HttpResponse } from 'uWebSockets.js';
import { markAdmitted } from './conn-limits.ts';

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
}

export class SocketSink implements Sink {
  readonly #socket: Socket;
  closed = false;
  bytes = 0;
  onDrain: (() => void) | null = null;
  onClose: (() => void) | null = null;

  constructor(socket: Socket) {
    this.#socket = socket;
    // A listener's stream: the connection is no longer counted as pending for its address.
    markAdmitted(socket);
    socket.on('drain', () => this.onDrain?.());
    socket.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      this.onClose?.();
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
}
