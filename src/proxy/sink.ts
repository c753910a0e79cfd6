/**
 * A listener's connection as the hub sees it, whichever door it came in by:
 * write() returns false when the connection is backed up, and the hub stops
 * writing until `drain` is called. Adapters for uWS responses (HTTP_PORT)
 * and plain sockets (the Icecast-compatible door).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { HttpResponse } from 'uWebSockets.js';
import { markAdmitted } from './conn-limits.ts';
import { EAGAIN } from '../core/native-addon.ts';

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
   * The connection's descriptor when the next write may go straight to it
   * (fan-send.ts: a plain TCP socket with nothing queued), else -1.
   */
  directFd(): number;
  /**
   * `chunk` went to directFd() and send(2) answered `result` (bytes or
   * -errno): counts it, hands what was not sent to the connection, and
   * answers as write() would.
   */
  afterDirect(chunk: Buffer, result: number): boolean;
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

  directFd(): number {
    return -1; // uWS owns its sockets' writes
  }

  afterDirect(chunk: Buffer): boolean {
    return this.write(chunk);
  }
}

export class SocketSink implements Sink {
  readonly #socket: Socket;
  /** The socket's descriptor; -1 for TLS, whose bytes only Node's TLS layer may write. */
  readonly #fd: number;
  closed = false;
  bytes = 0;
  onDrain: (() => void) | null = null;
  onClose: (() => void) | null = null;

  constructor(socket: Socket) {
    this.#socket = socket;
    const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
    this.#fd = socket instanceof TLSSocket || typeof fd !== 'number' ? -1 : fd;
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

  /*
   * Writes that bypass the Node stream also bypass what it does per write:
   * its idle timer (so a listener's socket must have no setTimeout) and
   * bytesWritten; and they assume nobody corks the socket or writes to it
   * but through socket.write.
   */
  directFd(): number {
    const s = this.#socket;
    // A destroyed socket's descriptor may already belong to another connection.
    return this.#fd >= 0 && !this.closed && !s.destroyed && s.writableLength === 0 ? this.#fd : -1;
  }

  afterDirect(chunk: Buffer, result: number): boolean {
    this.bytes += chunk.length;
    if (result === chunk.length) return true;
    if (result < 0 && result !== EAGAIN) {
      // Reset or gone: Node reports the close, and the hub lets the listener go.
      this.#socket.destroy();
      return true;
    }
    return this.#socket.write(result > 0 ? chunk.subarray(result) : chunk);
  }
}
