/**
 * The uWebSockets.js app on HTTP_PORT (one per worker): listeners (served
 * from a hub or redirected), playlists, sources carried to the master, the
 * status page and /health. Every answer is computed from the shared
 * snapshot; nothing here waits on the main thread.
 */
import type { Socket } from 'node:net';
import { App, type HttpRequest, type HttpResponse, type TemplatedApp } from 'uWebSockets.js';
import type { SnapshotReader } from '../shared/snapshot-reader.ts';
import type { LatencyRecorder } from '../shared/latency.ts';
import { S, type WorkerStats } from '../shared/worker-stats.ts';
import { health } from '../workers/health.ts';
import type { Hubs } from './hubs.ts';
import { ListenRouter, guessType } from './listen-route.ts';
import { PLAYLIST_TYPES, m3u, playlistOf, pls, streamUrl } from './playlist.ts';
import { UwsSink } from './sink.ts';
import { connectTo, masterIcecast, sourceHeaders } from './source-forward.ts';
import { statusPage } from './status-page.ts';
import { ICY_METAINT } from './icy.ts';

export interface FrontOptions {
  reader: SnapshotReader;
  hubs: Hubs;
  stats: WorkerStats;
  nodeName: string;
  domain: string;
  httpPort: number;
  icecastPort: number;
  proxy: boolean;
  worker: number;
  latency?: LatencyRecorder;
  /** The merged latency percentiles (JSON) for GET /debug/latency. */
  latencyJson?: () => string;
}

/** Loopback peers only: /debug pages are for the operator on the machine. */
export function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1' || addr === '0000:0000:0000:0000:0000:0000:0000:0001' || /^(0000:){5}ffff:7f/i.test(addr) || addr.startsWith('::ffff:127.');
}

function text(res: HttpResponse, status: string, body: string, extra?: [string, string][]): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('Content-Type', 'text/plain; charset=utf-8');
    for (const [k, v] of extra ?? []) res.writeHeader(k, v);
    res.end(body);
  });
}

/**
 * A 302 answered synchronously inside its request handler, where uWS corks
 * the response already: the hot path of redirect mode, without cork()'s
 * closure or the header loop.
 */
function redirect(res: HttpResponse, location: string): void {
  res.writeStatus('302 Found').writeHeader('Location', location).writeHeader('Content-Type', 'text/plain; charset=utf-8').end(`${location}\n`);
}

const STATUS: Record<number, string> = {
  302: '302 Found', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden', 404: '404 Not Found',
  405: '405 Method Not Allowed', 502: '502 Bad Gateway', 503: '503 Service Unavailable',
};

export function createFront(o: FrontOptions): TemplatedApp {
  const router = new ListenRouter({ nodeName: o.nodeName, proxy: o.proxy, door: false });
  let page = { seq: -1, body: '' };
  const listen = (res: HttpResponse, req: HttpRequest, head: boolean): void => {
    const url = req.getUrl();
    const snap = o.reader.current();
    const pl = playlistOf(url);
    if (pl) {
      if (!snap.mounts.some((m) => m.path === pl.mount)) return text(res, STATUS[404]!, 'no such mount\n');
      const u = streamUrl(o.domain, o.httpPort, pl.mount);
      const body = pl.kind === 'm3u' ? m3u(u) : pls(u, pl.mount);
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('Content-Type', PLAYLIST_TYPES[pl.kind]);
        if (head) res.endWithoutBody(Buffer.byteLength(body));
        else res.end(body);
      });
      return;
    }
    const t0 = performance.now();
    const d = router.route(snap, url);
    if (d.kind === 'error') return text(res, STATUS[d.status]!, d.text);
    if (d.kind === 'redirect') {
      o.stats.add(S.REDIRECTS, 1);
      redirect(res, d.location);
      // Routing and writing the answer, in µs (the network is the client's to measure).
      o.latency?.record('redirect_us', (performance.now() - t0) * 1000);
      return;
    }
    if (head) {
      res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', guessType(url)).endWithoutBody(0, false));
      return;
    }
    const icy = req.getHeader('icy-metadata') === '1';
    const ctx: { aborted: boolean; sink: UwsSink | null } = { aborted: false, sink: null };
    res.onAborted(() => {
      ctx.aborted = true;
      ctx.sink?.gone();
    });
    o.hubs.listen(url, {
      icy,
      begin: (h) => {
        if (ctx.aborted) return null;
        res.cork(() => {
          res.writeStatus('200 OK').writeHeader('Content-Type', h.contentType).writeHeader('Cache-Control', 'no-cache, no-store');
          for (const [k, v] of h.headers) res.writeHeader(k, v);
          if (icy && h.icyCapable) res.writeHeader('icy-metaint', String(ICY_METAINT));
        });
        ctx.sink = new UwsSink(res);
        return ctx.sink;
      },
      fail: (status, body) => {
        if (ctx.aborted) return;
        ctx.aborted = true;
        text(res, STATUS[status] ?? STATUS[503]!, body);
      },
    });
  };

  const source = (res: HttpResponse, req: HttpRequest): void => {
    const path = req.getUrl();
    const snap = o.reader.current();
    if (!snap.mounts.some((m) => m.path === path)) return text(res, STATUS[404]!, 'no such mount\n');
    // uWS reads a PUT with neither a length nor chunked encoding as an empty body and the
    // audio after it as the next request (FACTS.md): refuse it clearly instead.
    if (!/chunked/i.test(req.getHeader('transfer-encoding')) && req.getHeader('content-length') === '') {
      return text(res, '411 Length Required', `this port takes PUT sources with chunked encoding; streaming sources without it (ffmpeg's icecast://, SOURCE clients) connect to the Icecast-compatible port ${o.icecastPort}\n`);
    }
    const target = masterIcecast(snap);
    if (!target) return text(res, STATUS[503]!, 'no master right now (it is being elected); try again in a few seconds\n');
    const head = `PUT ${path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n${sourceHeaders((n) => req.getHeader(n) || undefined)}Connection: close\r\n\r\n`;
    const state = { done: false, accepted: false, paused: false };
    // uWS resets its 10 s idle timeout only after each further 160 kB of request body
    // (HTTP_RECEIVE_THROUGHPUT_BYTES x HTTP_IDLE_TIMEOUT_S), which a 128 kbit/s source
    // never reaches: it would be cut after about 10 s. pause() and resume() re-arm the
    // timer, so do that every few seconds while the source is live and not backed up.
    const keepAlive = setInterval(() => {
      if (state.done) clearInterval(keepAlive);
      else if (!state.paused) {
        res.pause();
        res.resume();
      }
    }, 4000);
    const finish = (status: number, body: string): void => {
      if (state.done) return;
      state.done = true;
      clearInterval(keepAlive);
      text(res, STATUS[status] ?? `${status} Error`, body);
    };
    const early: Buffer[] = [];
    let upstream: Socket | null = null;
    res.onAborted(() => {
      state.done = true;
      clearInterval(keepAlive);
      upstream?.destroy();
    });
    res.onData((chunk, isLast) => {
      const buf = Buffer.from(chunk.slice(0));
      if (upstream) {
        if (!upstream.write(buf)) {
          state.paused = true;
          res.pause();
        }
      } else early.push(buf);
      if (isLast && !state.done) {
        // The source finished its upload: Icecast sees the end when we close our side.
        upstream?.end();
        state.done = true;
        res.cork(() => res.writeStatus('200 OK').end());
      }
    });
    o.stats.add(S.SOURCES, 1);
    connectTo(target).then((sock) => {
      if (state.done && early.length === 0) {
        sock.destroy();
        return;
      }
      upstream = sock;
      sock.on('drain', () => {
        if (!state.paused || state.done) return;
        state.paused = false;
        res.resume();
      });
      let answer = '';
      sock.on('data', (d: Buffer) => {
        if (state.accepted) return;
        answer += d.toString('latin1');
        const line = /^(?:HTTP\/1\.[01]|ICE\/1\.0) (\d{3})/.exec(answer);
        if (!line) return;
        const code = Number(line[1]);
        if (code === 200 || code === 100) state.accepted = true;
        else {
          finish(code, code === 401 ? 'wrong username or password\n' : code === 403 ? 'this mount already has a source, or is not accepting one\n' : `the master's Icecast answered ${code}\n`);
          sock.destroy();
        }
      });
      sock.on('close', () => finish(502, 'the master closed the connection; try again\n'));
      sock.on('error', () => undefined);
      sock.write(head);
      for (const b of early.splice(0)) sock.write(b);
    }, () => finish(503, 'the master is not reachable right now (it may be changing); try again in a few seconds\n'));
  };

  return App()
    .get('/health', (res) => {
      const h = health(o.reader.current(), o.nodeName, o.worker);
      res.cork(() => {
        res.writeStatus(h.status === 200 ? '200 OK' : '503 Service Unavailable')
          .writeHeader('Content-Type', 'application/json').writeHeader('Cache-Control', 'no-store').end(h.body);
      });
    })
    .get('/debug/latency', (res) => {
      if (!isLoopback(Buffer.from(res.getRemoteAddressAsText()).toString())) return text(res, STATUS[404]!, 'not found\n');
      const body = o.latencyJson?.() ?? '{}';
      res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').writeHeader('Cache-Control', 'no-store').end(body));
    })
    .get('/', (res) => {
      // Rendered once per published snapshot, not per request.
      const snap = o.reader.current();
      if (page.seq !== snap.seq) page = { seq: snap.seq, body: statusPage(snap, o.domain, o.nodeName) };
      const body = page.body;
      res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', 'text/html; charset=utf-8').end(body));
    })
    .get('/*', (res, req) => listen(res, req, false))
    .head('/*', (res, req) => listen(res, req, true))
    .put('/*', source)
    .any('/*', (res) => text(res, STATUS[405]!, 'method not allowed\n', [['Allow', 'GET, HEAD, PUT']]));
}
