/**
 * The Icecast-compatible door: serves a connection whose request the front
 * door did not give to uWebSockets.js, on either public port. uWS refuses
 * HTTP/1.0 and ICE/1.0, mis-reads streaming PUTs without a length and sends
 * streams chunked, which several players cannot read; so every listener
 * stream, every source, every title update and every HTTP/1.0 request is
 * answered here, the way Icecast 2.4 answers it:
 *
 *   GET/HEAD a mount       the stream from a hub (HTTP/1.0 200, never
 *                          chunked, icy-* headers, ICY metadata on request),
 *                          or a 302 when this node is full
 *   GET a page             the same answers as uWS gives (pages.ts)
 *   SOURCE, PUT            admitted (source-admission.ts), then carried to
 *                          the master's Icecast, and on to the next master's
 *                          when that one goes (source-carry.ts); a chunked
 *                          body is decoded
 *   GET /admin/metadata    a title update, carried to the master's Icecast;
 *                          no other /admin/ path reaches an Icecast server
 *   OPTIONS                a CORS preflight
 */
import type { Socket } from 'node:net';
import { logger } from '../core/log.ts';
import { ListenerEntry, type ListenerLog } from './access-record.ts';
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { S, type WorkerStats } from '../ipc/worker-stats.ts';
import { ALLOW, CORS_EXPOSE, CORS_ORIGIN, REPLIES, say, serialize, text, type Answer } from './answers.ts';
import { admittedAtHead, markAdmitted } from './conn-limits.ts';
import { HeadParser, isChunked, type RequestHead } from './http-head.ts';
import type { Hubs } from './hubs.ts';
import type { StreamHead } from './hub-client.ts';
import { ICY_METAINT } from './icy.ts';
import type { ListenRouter } from './listen-route.ts';
import type { Pages } from './pages.ts';
import { SocketSink } from './sink.ts';
import { SourceGate } from './source-gate.ts';
import type { GuardLimits } from './source-guard.ts';
import { connectSoon, masterIcecast, type Target } from './source-forward.ts';
import { SourceCarry } from './source-carry.ts';
import { relaysRunning } from './source-relay.ts';
import { titleRequestOf, updateTitle, type TitleRequest } from './title-update.ts';

const log = logger('sources');

export const DOOR_LIMITS = {
  /** A client has this long to send its whole request head (slowloris). */
  headerTimeoutMs: 10_000,
} as const;

/** What the door needs for one public port. */
export interface DoorPort {
  pages: Pages;
  router: ListenRouter;
}

export interface DoorOptions {
  reader: SnapshotReader;
  hubs: Hubs;
  stats: WorkerStats;
  /** Wrong source logins allowed per address and the lockout after them (source-guard.ts); defaults when absent. */
  sourceAuth?: GuardLimits;
  /** The listener log (access-record.ts); none when absent. */
  listenerLog?: ListenerLog;
}

/** Headers Icecast puts on every stream it sends a listener. */
const STREAM_HEADERS = 'Cache-Control: no-cache, no-store\r\nPragma: no-cache\r\nExpires: Mon, 26 Jul 1997 05:00:00 GMT\r\n'
  + `${CORS_ORIGIN[0]}: ${CORS_ORIGIN[1]}\r\n${CORS_EXPOSE[0]}: ${CORS_EXPOSE[1]}\r\n`;

/** A listener's response head, as Icecast writes it: HTTP/1.0 whatever the client asked with, no length, no chunking. */
export function streamHead(h: StreamHead, icy: boolean): string {
  let out = `HTTP/1.0 200 OK\r\nContent-Type: ${h.contentType}\r\n${STREAM_HEADERS}`;
  for (const [k, v] of h.headers) out += `${k}: ${v}\r\n`;
  if (icy && h.icyCapable) out += `icy-metaint: ${ICY_METAINT}\r\n`;
  return `${out}Connection: close\r\n\r\n`;
}

const MASTER_UNREACHABLE = say('masterUnreachable');

/** How long a client has to read a final answer and close before the door closes the connection itself. */
export const REPLY_LINGER_MS = 2000;

/**
 * A final answer, then the connection's end. Ending our side is not enough:
 * a source program that streams without reading (ffmpeg's legacy SOURCE,
 * most libshout programs) never sees the FIN, and would write into a
 * half-closed connection for ever instead of reconnecting. What it sends
 * meanwhile is read and dropped (unread data would reset the connection and
 * could lose the answer), and the connection is closed once the answer has
 * left and the client has had a moment to read it.
 */
function reply(sock: Socket, head: RequestHead | null, a: Answer): void {
  sock.on('data', () => undefined);
  sock.resume();
  sock.end(serialize(a, head?.version ?? 'HTTP/1.0', head?.method === 'HEAD'), () => {
    const cut = setTimeout(() => sock.destroy(), REPLY_LINGER_MS);
    sock.once('close', () => clearTimeout(cut));
  });
}

export class IcecastDoor {
  readonly #o: DoorOptions;
  readonly #gate: SourceGate;

  constructor(o: DoorOptions) {
    this.#o = o;
    this.#gate = new SourceGate({ reader: o.reader, stats: o.stats, ...(o.sourceAuth ? { limits: o.sourceAuth } : {}) });
    // A worker that replaces one reuses its row: the relays counted there ended with the old thread.
    o.stats.set(S.NATIVE_SOURCES, relaysRunning());
  }

  /**
   * Reads the request head from `sock` (which has consumed nothing yet) and answers it. The head must
   * be whole by `headDeadline` (performance.now() ms; the front door sets it from accept), however
   * slowly it comes.
   */
  accept(sock: Socket, port: DoorPort, headDeadline = performance.now() + DOOR_LIMITS.headerTimeoutMs): void {
    sock.on('error', () => undefined);
    const parser = new HeadParser();
    const timer = setTimeout(() => sock.destroy(), Math.max(0, headDeadline - performance.now()));
    const onData = (chunk: Buffer): void => {
      const r = parser.feed(chunk);
      if (r.kind === 'more') return;
      clearTimeout(timer);
      sock.off('data', onData);
      if (r.kind === 'bad') {
        this.#o.stats.add(S.BAD_REQUESTS, 1);
        reply(sock, null, text(r.status, `${r.reason}\n`));
        return;
      }
      if (admittedAtHead(r.head.method, r.head.path)) markAdmitted(sock);
      sock.pause();
      this.#route(sock, r.head, r.rest, port);
    };
    sock.on('data', onData);
    sock.on('close', () => clearTimeout(timer));
    sock.resume();
  }

  #route(sock: Socket, head: RequestHead, rest: Buffer, port: DoorPort): void {
    const page = port.pages.answer(head.method, head.path, sock.remoteAddress ?? '');
    if (page) return reply(sock, head, page);
    switch (head.method) {
      case 'GET':
      case 'HEAD':
        if (head.path.startsWith('/admin/')) return this.#admin(sock, head);
        return this.#listener(sock, head, port);
      case 'SOURCE':
      case 'PUT':
        return this.#source(sock, head, rest);
      default:
        reply(sock, head, say('methodNotAllowed', [ALLOW]));
    }
  }

  #listener(sock: Socket, head: RequestHead, port: DoorPort): void {
    const since = Date.now();
    const peer = sock.remoteAddress ?? '';
    // One address for the listener log and radioctl listeners, X-Forwarded-For believed as TRUSTED_PROXIES says.
    const address = this.#o.listenerLog?.address(peer, head.headers.get('x-forwarded-for')) ?? peer;
    const entry = new ListenerEntry(this.#o.listenerLog, address, `${head.method} ${head.target} ${head.version}`,
      head.headers.get('referer'), head.headers.get('user-agent'), since);
    const d = port.router.route(this.#o.reader.current(), head.path);
    if (d.kind === 'error') {
      entry.end(d.status, 0);
      return reply(sock, head, text(d.status, d.text, [CORS_ORIGIN]));
    }
    if (d.kind === 'redirect') {
      this.#o.stats.add(S.REDIRECTS, 1);
      entry.end(REPLIES.redirect.status, 0);
      // The query goes along: some players and stream links carry tokens in it.
      const location = d.location + head.target.slice(head.path.length);
      return reply(sock, head, say('redirect', [['Location', location], CORS_ORIGIN], location));
    }
    const icy = head.headers.get('icy-metadata') === '1';
    const onlyHead = head.method === 'HEAD';
    sock.resume();
    sock.on('data', () => undefined); // listeners have nothing more to say
    this.#o.hubs.listen(head.path, {
      icy,
      who: entry,
      begin: (h) => {
        if (sock.destroyed) return null;
        if (onlyHead) {
          entry.end(200, 0);
          sock.end(streamHead(h, icy));
          return null;
        }
        sock.write(streamHead(h, icy));
        return new SocketSink(sock, entry);
      },
      fail: (status, body) => {
        entry.end(status, 0);
        reply(sock, head, text(status, body, [CORS_ORIGIN]));
      },
    });
  }

  #admin(sock: Socket, head: RequestHead): void {
    if (head.path !== '/admin/metadata') return reply(sock, head, say('notFound'));
    void this.updateTitle(sock.remoteAddress ?? '', titleRequestOf(head)).then((a) => reply(sock, head, a));
  }

  /**
   * A title update from `peer`, admitted like a source by this door's gate: also for the uWS app,
   * which gets one on a connection kept alive from an earlier short request.
   */
  updateTitle(peer: string, r: TitleRequest): Promise<Answer> {
    return updateTitle(r, (mount, auth) => this.#gate.admit(peer, mount, auth));
  }

  /** The login is checked here (and the address's lockout) before any connection to the master is opened. */
  #source(sock: Socket, head: RequestHead, rest: Buffer): void {
    void this.#gate.admit(sock.remoteAddress ?? '', head.path, head.headers.get('authorization')).then((a) => {
      if (sock.destroyed) return;
      if (a.kind === 'refuse') return reply(sock, head, a.answer);
      this.#o.stats.add(S.SOURCES, 1);
      const findTarget = (): Target | null => masterIcecast(this.#o.reader.current());
      connectSoon(a.target, findTarget).then(({ sock: up, target }) => {
        if (sock.destroyed) {
          up.destroy();
          return;
        }
        // The source outlives its upstream: a new master's Icecast gets it as soon as it takes sources.
        const carrier = new SourceCarry({
          client: sock,
          head,
          rest,
          upstreamHead: (t, again) => upstreamHead(head, a.authorization, t, again),
          findTarget,
          onResumed: (gap, t) => {
            this.#o.stats.add(S.SOURCE_RESUMES, 1);
            log.info(`source of ${head.path} carried on to ${t.name} after ${gap} ms without an upstream`);
          },
          onUnanswered: () => reply(sock, head, MASTER_UNREACHABLE),
          onRelay: () => this.#o.stats.set(S.NATIVE_SOURCES, relaysRunning()),
          holdRefusal: (status) => passingRefusal(status, this.#o.reader.current().mounts.find((m) => m.path === head.path)?.sourceConnected === true),
        });
        // A changed password or a deleted mount drops the source, both sides.
        const done = this.#gate.carry(a.mount, a.credential, () => carrier.close());
        sock.once('close', done);
        carrier.start(up, target);
      }, () => reply(sock, head, MASTER_UNREACHABLE));
    });
  }
}

/**
 * Whether the master's Icecast refusing an admitted source (`status`) is
 * passing, so that the program is held while it is asked again:
 * - 401: the door checked the login against the cluster's mounts, so
 *   Icecast's configuration trails them (a mount just created, a password
 *   just changed: its reload is a moment away);
 * - 403 "mountpoint in use" for a mount no node reports a source on: a new
 *   master's Icecast still holding it for its relay of the old one. A real
 *   second source (`live`) gets it at once.
 */
export function passingRefusal(status: number, live: boolean): boolean {
  return status === 401 || (status === 403 && !live);
}

/** Request headers a source sends that do not go on to Icecast as they are. */
const REWRITTEN = new Set(['authorization', 'host', 'transfer-encoding', 'content-length', 'connection']);

/**
 * The source's request as the master's Icecast gets it: the same request
 * line and headers, the login rewritten (see source-admission.ts), and a
 * chunked body sent on decoded and unframed, which Icecast reads until the
 * connection ends, as it does for ffmpeg's PUT.
 */
export function upstreamHead(head: RequestHead, authorization: string, target: Target, again = false): string {
  const chunked = isChunked(head);
  let out = `${head.method} ${head.target} ${head.version}\r\nHost: ${target.host}:${target.port}\r\nAuthorization: ${authorization}\r\n`;
  // Carried on to a new upstream, the body is already flowing: no 100 Continue to wait for.
  for (const [k, v] of head.headers) if (!REWRITTEN.has(k) && !(again && k === 'expect')) out += `${k}: ${v}\r\n`;
  const length = head.headers.get('content-length');
  if (!chunked && length !== undefined) out += `Content-Length: ${length}\r\n`;
  return `${out}\r\n`;
}
