/**
 * The front door of both public ports (HTTP_PORT and ICECAST_PORT), in
 * every worker (SO_REUSEPORT spreads connections over them). node:net
 * accepts each connection without reading from it; the conn-peek addon
 * looks at its request line without consuming it (MSG_PEEK) and
 * classify.ts decides who serves it:
 *
 *   accept (node:net, paused) --peek--> classify
 *        |- 'uws':  the descriptor goes to uWebSockets.js (adoptSocket),
 *        |          which reads the untouched request as if it had accepted
 *        |          the connection itself; node:net's handle is closed
 *        '- 'door': node:net's socket goes on to the Icecast-compatible
 *                   door, which reads the request itself
 *
 * Exactly one side owns the connection afterwards: the addon works on a
 * duplicate descriptor, and closing one of two descriptors sends nothing to
 * the peer. Without the addon every connection goes to the door, which
 * answers every request too, only at a lower rate for short ones.
 *
 * Before anything is read, the connection is checked against the limits
 * (conn-limits.ts): open connections on the port, new connections and
 * connections not yet admitted per client address. A refused one gets a
 * 503 and is closed. The request head must be whole within
 * DOOR_LIMITS.headerTimeoutMs of accept, however it trickles in and
 * whoever reads it; a connection that has not become a stream or a source
 * PENDING_MS after accept is closed.
 *
 * HTTPS_PORT (listenTls) has the same limits and hands every connection to
 * the door once TLS is set up: uWS cannot adopt a connection whose bytes
 * node:tls decrypts. Its TLS context can be replaced at any time
 * (setSecureContext); connections keep the one they started with.
 */
import { Socket, createServer, type Server } from 'node:net';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';
import type { TemplatedApp } from 'uWebSockets.js';
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { classify, headState } from './classify.ts';
import { BUSY_ANSWER, ClientTable, onAdmitted, onKept, workerShare, type FrontLimits, type Keeper, type Kept, type Refusal } from './conn-limits.ts';
import { EAGAIN, plainFd } from '../core/native-addon.ts';
import { loadConnPeek, type ConnPeek } from './conn-peek.ts';
import { DOOR_LIMITS, type DoorPort, type IcecastDoor } from './icecast-door.ts';
import { KnownAnswers } from './known-answers.ts';
import type { WorkerStats } from '../ipc/worker-stats.ts';
import type { ListenerLog } from './access-record.ts';

/** uWS's App has adoptSocket(fd), which its type declarations leave out. */
export type AdoptingApp = TemplatedApp & { adoptSocket(fd: number): void };

export interface FrontDoorOptions {
  reader: SnapshotReader;
  door: IcecastDoor;
  /** Connection limits for the whole node (conn-limits.ts); this worker takes its share. None: no limits but the defaults' cap. */
  limits?: FrontLimits;
  /**
   * Redirects already decided are answered by native code (known-answers.ts)
   * on the connections whose first request is one; the worker's counters
   * are its to add to. Not given: uWS answers every short request.
   */
  knownAnswers?: { stats: WorkerStats; log?: ListenerLog };
}

/** How long to wait before looking again at a head that has not all arrived... */
const REPEEK_MS = 20;
/**
 * ...and how many times: a head split over two segments is whole within
 * milliseconds, one that trickles goes to the door, which reads it as it
 * comes (each look is a system call and a copy, not to be repeated 50 times
 * a second for every trickling connection).
 */
const MAX_REPEEKS = 5;
/** A connection neither admitted (a stream, a source) nor closed this long after accept is closed. */
export const PENDING_MS = 30_000;
/** A refused connection gets this long to read the 503 and close before it is cut... */
const REFUSE_LINGER_MS = 1000;
/** ...and at most this many wait so at once; beyond, refused connections are closed at once. */
const MAX_REFUSING = 256;
/** Without settings (tests building a worker by hand): a cap still, never none. */
const DEFAULT_LIMITS: FrontLimits = { maxConnections: 40_000, clientRate: 0, clientPending: 0, workers: 1 };

/**
 * The addon holds the callback it is given strongly until its handle is
 * collected, and the callback's closure holds the handle: given `look`
 * itself, every connection's socket and buffers stayed in memory for good
 * (25 KB per connection measured with 20 KB heads). It gets this relay
 * instead, made outside #accept so that its closure holds nothing but the
 * box, which is emptied when the front door is done with the connection.
 */
interface Relayed {
  run: (() => void) | null;
}
function relay(box: Relayed): () => void {
  return () => box.run?.();
}

/**
 * Connections one port holds in this worker, whoever serves them, and how
 * many it may; also what keeps a connection counted once native code serves
 * it without its socket (conn-limits.ts keepCounted).
 */
class PortCount implements Keeper {
  open = 0;
  readonly cap: number;

  constructor(cap: number) {
    this.cap = cap;
  }

  keep(): Kept {
    return new KeptCount(this);
  }
}

/** One connection of the port closed (never below zero, whatever reports it). */
function uncount(count: PortCount): void {
  count.open = Math.max(0, count.open - 1);
}

/**
 * A connection whose socket closed while native code goes on serving it:
 * counted again when made (the socket's close uncounted it), uncounted on
 * release. One small object, kept as long as the listener listens.
 */
class KeptCount implements Kept {
  #count: PortCount | null;

  constructor(count: PortCount) {
    count.open++;
    this.#count = count;
  }

  release(): void {
    if (this.#count) uncount(this.#count);
    this.#count = null;
  }
}

export class FrontDoor {
  readonly #o: FrontDoorOptions;
  readonly #servers: Server[] = [];
  readonly #peek: ConnPeek | null = loadConnPeek();
  /** One buffer for every peek: the worker runs one callback at a time. */
  readonly #buf = new Uint8Array(4096);
  readonly #clients: ClientTable;
  readonly #cap: number;
  #refusing = 0;
  /** Per HTTPS port, the TLS context new connections get. */
  readonly #tls = new Map<number, { context: SecureContext }>();
  /** Per plain port, the native answerer of known redirects, if any. */
  readonly #known: KnownAnswers[] = [];
  /** Connections refused at accept, by reason. */
  readonly refused: Record<Refusal, number> = { busy: 0, rate: 0, pending: 0 };

  constructor(o: FrontDoorOptions) {
    this.#o = o;
    const l = o.limits ?? DEFAULT_LIMITS;
    this.#cap = workerShare(l.maxConnections, l.workers);
    this.#clients = new ClientTable({ rate: workerShare(l.clientRate, l.workers), pending: workerShare(l.clientPending, l.workers) });
  }

  listen(addrs: string[], port: number, door: DoorPort, app: AdoptingApp): Promise<void> {
    const count = new PortCount(this.#cap);
    // uWS reports each socket it opens (adoptSocket) and closes: the connections it holds count too.
    app.filter((_res, n) => {
      if (n > 0) count.open++;
      else uncount(count);
    });
    const known = this.#o.knownAnswers ? KnownAnswers.create({
      reader: this.#o.reader, stats: this.#o.knownAnswers.stats, port: door,
      ...(this.#o.knownAnswers.log ? { log: this.#o.knownAnswers.log } : {}),
      // A connection the addon gives back stays counted: it is the door's from here, and its close uncounts it.
      handoff: (fd, unsent, unread, headAgeMs) => this.#resume(fd, unsent, unread, headAgeMs, door, count),
      closed: () => uncount(count),
    }) : null;
    if (known) this.#known.push(known);
    return Promise.all(addrs.map((host) => new Promise<void>((resolve, reject) => {
      const server = createServer({ noDelay: true, pauseOnConnect: true }, (sock) => this.#accept(sock, door, app, count, known));
      server.once('error', reject);
      server.listen({ host, port, reusePort: true, backlog: 4096 }, () => {
        server.off('error', reject);
        server.on('error', () => undefined);
        this.#servers.push(server);
        resolve();
      });
    }))).then(() => undefined);
  }

  /**
   * Serves HTTPS on `port` with the certificate and key given (PEM); a
   * second call for the same port only replaces them, for new connections.
   */
  listenTls(addrs: string[], port: number, door: DoorPort, pem: { cert: string; key: string }): Promise<void> {
    const context = createSecureContext(pem);
    const existing = this.#tls.get(port);
    if (existing) {
      existing.context = context;
      return Promise.resolve();
    }
    const state = { context };
    this.#tls.set(port, state);
    const count = new PortCount(this.#cap);
    return Promise.all(addrs.map((host) => new Promise<void>((resolve, reject) => {
      const server = createServer({ noDelay: true }, (sock) => {
        sock.on('error', () => undefined);
        // Wrapped at once, before the first byte is read: node:tls reads the handshake from the
        // socket's handle, and from here the TLS socket is the one that closes and is closed.
        const secure = new TLSSocket(sock, { isServer: true, secureContext: state.context });
        const opened = this.#open(secure, count, false);
        if (!opened) return;
        onAdmitted(secure, opened.admit);
        // The handshake counts against the head's deadline: the door's timer runs from here.
        this.#o.door.accept(secure, door, opened.headDeadline);
      });
      server.once('error', (err) => {
        this.#tls.delete(port);
        reject(err);
      });
      server.listen({ host, port, reusePort: true, backlog: 4096 }, () => {
        server.removeAllListeners('error');
        server.on('error', () => undefined);
        this.#servers.push(server);
        resolve();
      });
    }))).then(() => undefined);
  }

  /** Whether HTTPS is served on `port` here. */
  servesTls(port: number): boolean {
    return this.#tls.has(port);
  }

  /** Stops accepting; connections already handed on are their owners' to close. */
  close(): void {
    for (const s of this.#servers.splice(0)) s.close();
  }

  /** Closes the connections native code holds (known redirects); none are taken after. */
  closeKnown(): void {
    for (const k of this.#known.splice(0)) k.close();
  }

  /** Lines for the redirects native code answered since the last call, into the listener log. */
  noteKnownLog(): void {
    for (const k of this.#known) k.noteLog();
  }

  /** Redirects native code answered since the last call, and their nanoseconds. */
  knownAnswered(): { count: number; ns: number } {
    let count = 0;
    let ns = 0;
    for (const k of this.#known) {
      const [c, n] = k.drain();
      count += c;
      ns += n;
    }
    return { count, ns };
  }

  /**
   * A connection native code gave back: its answers not yet sent go first,
   * and the door reads the bytes already read as if they had just come,
   * by the deadline of the head they start. False when no socket could be
   * made of it.
   */
  #resume(fd: number, unsent: Buffer, unread: Buffer, headAgeMs: number, door: DoorPort, count: PortCount): boolean {
    let sock: Socket;
    try {
      sock = new Socket({ fd, readable: true, writable: true, allowHalfOpen: false });
    } catch {
      return false; // the addon closes the descriptor and reports the connection closed
    }
    sock.setNoDelay(true);
    sock.on('error', () => undefined);
    sock.once('close', () => uncount(count));
    onKept(sock, count);
    if (unsent.length > 0) sock.write(unsent);
    sock.pause();
    if (unread.length > 0) sock.unshift(unread);
    // A head that began in native code keeps its deadline: a trickle gains no time by the move.
    this.#o.door.accept(sock, door, performance.now() + DOOR_LIMITS.headerTimeoutMs - headAgeMs);
    return true;
  }

  /**
   * Says 503 without reading the request, and closes. The bytes the client
   * sends meanwhile are read and dropped: closing a socket with unread data
   * resets the connection, and the client might lose the answer.
   */
  #refuse(sock: Socket, why: Refusal): void {
    this.refused[why]++;
    if (this.#refusing >= MAX_REFUSING) {
      sock.destroy();
      return;
    }
    this.#refusing++;
    const cut = setTimeout(() => sock.destroy(), REFUSE_LINGER_MS);
    sock.once('close', () => {
      this.#refusing--;
      clearTimeout(cut);
    });
    sock.on('data', () => undefined);
    sock.resume();
    sock.end(BUSY_ANSWER);
  }

  /**
   * The limits at accept: null when the connection is refused (it gets a
   * 503, or on HTTPS_PORT, where a plain answer means nothing, is closed);
   * otherwise `admit`, to call when it becomes a stream or a source, and
   * the deadline for its request head.
   */
  #open(sock: Socket, count: PortCount, plain = true): { admit: () => void; headDeadline: number } | null {
    sock.on('error', () => undefined);
    const refuse = (why: Refusal): null => {
      if (plain) this.#refuse(sock, why);
      else {
        this.refused[why]++;
        sock.destroy();
      }
      return null;
    };
    const client = this.#clients.open(sock.remoteAddress ?? '', Date.now());
    if (typeof client === 'string') return refuse(client);
    if (count.open >= count.cap) {
      this.#clients.settle(client);
      return refuse('busy');
    }
    count.open++;
    // The request head must be whole this long after accept, whoever reads it.
    const headDeadline = performance.now() + DOOR_LIMITS.headerTimeoutMs;
    let admitted = false;
    const admit = (): void => {
      if (admitted) return;
      admitted = true;
      clearTimeout(pending);
      this.#clients.settle(client);
    };
    const pending = setTimeout(() => sock.destroy(), PENDING_MS);
    sock.once('close', () => {
      count.open--;
      admit();
    });
    return { admit, headDeadline };
  }

  #accept(sock: Socket, door: DoorPort, app: AdoptingApp, count: PortCount, known: KnownAnswers | null): void {
    const opened = this.#open(sock, count);
    if (!opened) return;
    const { admit, headDeadline } = opened;
    onAdmitted(sock, admit);
    onKept(sock, count);
    const peek = this.#peek;
    const fd = plainFd(sock);
    if (!peek || fd < 0) return this.#o.door.accept(sock, door, headDeadline);
    let watch: object;
    let repeeks = 0;
    const look = (): void => {
      const n = peek.peek(watch, this.#buf);
      if (n === EAGAIN) return peek.poll(watch);
      if (n <= 0) return finish(() => sock.destroy());
      const first = this.#buf.subarray(0, n);
      let c = classify(first, (path) => door.router.streams(this.#o.reader.current(), path));
      if (c === 'uws') {
        const h = headState(first);
        if (h !== 'whole') c = h === 'door' ? 'door' : 'more';
      }
      if (c === 'more') {
        if (n >= this.#buf.length || repeeks++ >= MAX_REPEEKS) return finish(() => this.#o.door.accept(sock, door, headDeadline));
        retry ??= setTimeout(() => {
          retry = null;
          look();
        }, REPEEK_MS);
        return;
      }
      if (c === 'uws') {
        cleanup();
        admit();
        const own = peek.release(watch);
        const peer = sock.remoteAddress ?? '';
        // uWS, or native code, counts the connection from here; node:net's close below uncounts this side.
        sock.destroy();
        if (known?.take(own, first, peer)) count.open++;
        else app.adoptSocket(own);
        return;
      }
      finish(() => this.#o.door.accept(sock, door, headDeadline));
    };
    const box: Relayed = { run: look };
    try {
      watch = peek.watch(fd, relay(box));
    } catch {
      return this.#o.door.accept(sock, door, headDeadline);
    }
    let retry: NodeJS.Timeout | null = null;
    let done = false;
    // A client that sends nothing, or not enough to choose, is let go at the head deadline.
    const deadline = setTimeout(() => finish(() => sock.destroy()), DOOR_LIMITS.headerTimeoutMs);
    const cleanup = (): void => {
      done = true;
      box.run = null;
      clearTimeout(deadline);
      if (retry) clearTimeout(retry);
    };
    const finish = (then: () => void): void => {
      if (done) return;
      cleanup();
      peek.close(watch);
      then();
    };
    sock.once('close', () => finish(() => undefined));
  }
}
