/**
 * The uWebSockets.js app of one public port (one per port per worker). It
 * listens on nothing: the front door (front-door.ts) hands it the
 * connections whose first request is a short HTTP/1.1 one — pages,
 * playlists, /health, redirects, CORS preflights — and it serves them and
 * whatever else those connections ask for while kept alive (a stream then
 * too). Every short answer is computed synchronously from the shared
 * snapshot; nothing here waits.
 */
import { App, type HttpRequest, type HttpResponse } from 'uWebSockets.js';
import type { LatencyRecorder } from '../ipc/latency.ts';
import { plain, type Finished, type ListenerLog } from './access-record.ts';
import type { TitleRequest } from './title-update.ts';
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { S, type WorkerStats } from '../ipc/worker-stats.ts';
import { ALLOW, CORS_EXPOSE, CORS_ORIGIN, REPLIES, TEXT_PLAIN, replyText, say, statusText, text, type Answer } from './answers.ts';
import type { Hubs } from './hubs.ts';
import { ICY_METAINT } from './icy.ts';
import { UwsSink } from './sink.ts';
import type { AdoptingApp } from './front-door.ts';
import type { ListenDecision, ListenRouter } from './listen-route.ts';
import type { Pages } from './pages.ts';

/**
 * The redirect's fixed parts as bytes, made once: uWS copies bytes as they
 * are, where a string is measured and encoded again on every call.
 */
const REDIRECT_STATUS = Buffer.from(statusText(REPLIES.redirect.status));
const LOCATION = Buffer.from('Location');
const TEXT_PLAIN_NAME = Buffer.from(TEXT_PLAIN[0]);
const TEXT_PLAIN_VALUE = Buffer.from(TEXT_PLAIN[1]);

/** The client's address as uWS spells it (plain() in access-record.ts turns its IPv4-mapped form into IPv4). */
const peerOf = (res: HttpResponse): string => Buffer.from(res.getRemoteAddressAsText()).toString();

export interface FrontOptions {
  reader: SnapshotReader;
  hubs: Hubs;
  pages: Pages;
  router: ListenRouter;
  stats: WorkerStats;
  latency?: LatencyRecorder;
  /** The listener log (access-record.ts); none when absent. */
  listenerLog?: ListenerLog;
  /** Title updates (the Icecast-compatible door's, with its login checks and lockout). */
  titles?: (peer: string, r: TitleRequest) => Promise<Answer>;
}

/** Inside a uWS handler the response is corked already: write it out directly. */
function write(res: HttpResponse, a: Answer, head: boolean): void {
  res.writeStatus(statusText(a.status));
  for (const [k, v] of a.headers) res.writeHeader(k, v);
  if (head) endHead(res, Buffer.byteLength(a.body));
  else res.end(a.body);
}

/**
 * Ends the answer to a HEAD: the length the body would have, and no body.
 * Not endWithoutBody(length): this uWS takes that length as a body still to
 * come, so the answer never ends and the connection's next request waits
 * for ever (and pipelined ones with it).
 */
function endHead(res: HttpResponse, length: number): void {
  res.writeHeader('Content-Length', String(length)).endWithoutBody();
}

const NOTHING = (): void => undefined;

/** What the listener log needs of a uWS request, read inside its handler; status and bytes are filled in when it ends (note() copies). */
function finishedOf(res: HttpResponse, req: HttpRequest, method: string, path: string, listenerLog: ListenerLog): Finished {
  const q = req.getQuery();
  const header = (name: string): string | undefined => req.getHeader(name) || undefined;
  return {
    address: listenerLog.address(peerOf(res), header('x-forwarded-for')),
    request: `${method} ${q ? `${path}?${q}` : path} HTTP/1.1`, status: 0, bytes: 0,
    referer: header('referer'), userAgent: header('user-agent'), since: Date.now(),
  };
}

/**
 * A redirect's Location and body as bytes, per decision: the router keeps
 * each decision until the snapshot changes, so most requests find theirs.
 */
const encoded = new WeakMap<ListenDecision, [Buffer, Buffer]>();

function redirectBytes(d: ListenDecision & { kind: 'redirect' }): [Buffer, Buffer] {
  let e = encoded.get(d);
  if (e === undefined) {
    e = [Buffer.from(d.location), Buffer.from(replyText('redirect', d.location))];
    encoded.set(d, e);
  }
  return e;
}

/** A redirect's Location and body when the request carried a query (passed on, so not made once). */
function withQuery(location: string, q: string): [string, string] {
  const l = `${location}?${q}`;
  return [l, replyText('redirect', l)];
}

/** A title update on a connection uWS holds: answered when the master's Icecast has answered. */
function titleUpdate(res: HttpResponse, req: HttpRequest, titles: NonNullable<FrontOptions['titles']>): void {
  const r: TitleRequest = { query: req.getQuery() ?? '', authorization: req.getHeader('authorization') || undefined, userAgent: req.getHeader('user-agent') || undefined };
  const peer = plain(peerOf(res));
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  void titles(peer, r).then((a) => {
    if (!aborted) res.cork(() => write(res, a, false));
  });
}

export function createFront(o: FrontOptions): AdoptingApp {
  const handle = (method: 'GET' | 'HEAD' | 'OPTIONS') => (res: HttpResponse, req: HttpRequest): void => {
    // uWS ends the whole process when a handler returns without answering and without an
    // abort handler, which is what a handler cut short does when the watchdog terminates a
    // stuck worker; with one attached, the thread ends alone.
    res.onAborted(NOTHING);
    const path = req.getUrl();
    // A client that kept a connection alive from a short request may send its title update on it.
    if (path === '/admin/metadata' && o.titles) return titleUpdate(res, req, o.titles);
    const page = o.pages.answer(method, path, method === 'GET' && path.startsWith('/debug/') ? peerOf(res) : '');
    if (page) return write(res, page, method === 'HEAD');
    const t0 = performance.now();
    const d = o.router.route(o.reader.current(), path);
    // The request as the listener log tells it, read now: uWS's request is gone once the handler returns.
    const finished = o.listenerLog?.enabled === true ? finishedOf(res, req, method, path, o.listenerLog) : null;
    if (d.kind === 'redirect') {
      o.stats.add(S.REDIRECTS, 1);
      if (finished) {
        finished.status = REPLIES.redirect.status;
        o.listenerLog!.note(finished);
      }
      const q = req.getQuery();
      // The hot path of redirect mode: no header loop, no closure, bytes where they can be made once.
      const [location, body] = q ? withQuery(d.location, q) : redirectBytes(d);
      res.writeStatus(REDIRECT_STATUS).writeHeader(LOCATION, location).writeHeader(TEXT_PLAIN_NAME, TEXT_PLAIN_VALUE);
      // A HEAD gets the head alone: body bytes after it would be read as the start of the next answer.
      if (method === 'HEAD') endHead(res, Buffer.byteLength(body));
      else res.end(body);
      // Routing and writing the answer, in µs (the network is the client's to measure).
      o.latency?.record('redirect_us', (performance.now() - t0) * 1000);
      return;
    }
    if (d.kind === 'error') {
      if (finished) {
        finished.status = d.status;
        o.listenerLog!.note(finished);
      }
      return write(res, text(d.status, d.text, [CORS_ORIGIN]), method === 'HEAD');
    }
    // A stream asked for on a connection kept alive from an earlier short request: the front door
    // gave the connection to uWS before this request came. Only HTTP/1.1 clients that keep
    // connections alive (browsers, HTTP libraries) get here, and they read chunked encoding, which
    // uWS uses for a body of unknown length; a player's own stream connection goes to the door.
    stream(res, req, path, method === 'HEAD', finished);
  };
  const stream = (res: HttpResponse, req: HttpRequest, path: string, head: boolean, finished: Finished | null): void => {
    const icy = req.getHeader('icy-metadata') === '1';
    const ctx: { aborted: boolean; sink: UwsSink | null } = { aborted: false, sink: null };
    const note = (status: number, bytes: number): void => {
      if (finished) {
        finished.status = status;
        finished.bytes = bytes;
        o.listenerLog!.note(finished);
      }
    };
    res.onAborted(() => {
      ctx.aborted = true;
      if (ctx.sink) note(200, ctx.sink.bytes);
      ctx.sink?.gone();
    });
    // Who listens, for radioctl listeners: read once, with the listener log's when it has it.
    const peer = finished ? '' : peerOf(res);
    const who = finished
      ? { address: finished.address, userAgent: finished.userAgent ?? '', since: finished.since }
      : { address: o.listenerLog?.address(peer, req.getHeader('x-forwarded-for') || undefined) ?? peer, userAgent: req.getHeader('user-agent'), since: Date.now() };
    o.hubs.listen(path, {
      icy,
      who,
      begin: (h) => {
        if (ctx.aborted) return null;
        res.cork(() => {
          res.writeStatus('200 OK').writeHeader('Content-Type', h.contentType).writeHeader('Cache-Control', 'no-cache, no-store')
            .writeHeader(CORS_ORIGIN[0], CORS_ORIGIN[1]).writeHeader(CORS_EXPOSE[0], CORS_EXPOSE[1]);
          for (const [k, v] of h.headers) res.writeHeader(k, v);
          if (icy && h.icyCapable) res.writeHeader('icy-metaint', String(ICY_METAINT));
          if (head) res.endWithoutBody(0, false);
        });
        if (head) {
          ctx.aborted = true;
          note(200, 0);
          return null;
        }
        ctx.sink = new UwsSink(res);
        return ctx.sink;
      },
      fail: (status, body) => {
        if (ctx.aborted) return;
        ctx.aborted = true;
        note(status, 0);
        res.cork(() => write(res, text(status, body, [CORS_ORIGIN]), head));
      },
    });
  };
  return (App() as AdoptingApp)
    .get('/*', handle('GET'))
    .head('/*', handle('HEAD'))
    .options('/*', handle('OPTIONS'))
    .any('/*', (res) => write(res.onAborted(NOTHING), say('methodNotAllowed', [ALLOW]), false)) as AdoptingApp;
}
