/**
 * The uWebSockets.js app of one public port (one per port per worker). It
 * listens on nothing: the front door (front-door.ts) hands it the
 * connections whose first request is a short HTTP/1.1 one — pages,
 * playlists, /health, redirects, CORS preflights — and it serves them and
 * whatever else those connections ask for while kept alive. Every answer is
 * computed synchronously from the shared snapshot; nothing here waits.
 */
import { App, type HttpRequest, type HttpResponse } from 'uWebSockets.js';
import type { LatencyRecorder } from '../shared/latency.ts';
import type { SnapshotReader } from '../shared/snapshot-reader.ts';
import { S, type WorkerStats } from '../shared/worker-stats.ts';
import { CORS_ORIGIN, statusText, text, type Answer } from './answers.ts';
import type { AdoptingApp } from './front-door.ts';
import type { ListenRouter } from './listen-route.ts';
import type { Pages } from './pages.ts';

export interface FrontOptions {
  reader: SnapshotReader;
  pages: Pages;
  router: ListenRouter;
  stats: WorkerStats;
  latency?: LatencyRecorder;
}

/** Inside a uWS handler the response is corked already: write it out directly. */
function write(res: HttpResponse, a: Answer, head: boolean, close = false): void {
  res.writeStatus(statusText(a.status));
  for (const [k, v] of a.headers) res.writeHeader(k, v);
  if (head) res.endWithoutBody(Buffer.byteLength(a.body), close);
  else res.end(a.body, close);
}

export function createFront(o: FrontOptions): AdoptingApp {
  const handle = (method: 'GET' | 'HEAD' | 'OPTIONS') => (res: HttpResponse, req: HttpRequest): void => {
    const path = req.getUrl();
    const page = o.pages.answer(method, path, method === 'GET' && path === '/debug/latency' ? Buffer.from(res.getRemoteAddressAsText()).toString() : '');
    if (page) return write(res, page, method === 'HEAD');
    const t0 = performance.now();
    const d = o.router.route(o.reader.current(), path);
    if (d.kind === 'redirect') {
      o.stats.add(S.REDIRECTS, 1);
      const q = req.getQuery();
      const location = q ? `${d.location}?${q}` : d.location;
      // The hot path of redirect mode: no header loop, no closure.
      res.writeStatus('302 Found').writeHeader('Location', location).writeHeader('Content-Type', 'text/plain; charset=utf-8').end(`${location}\n`);
      // Routing and writing the answer, in µs (the network is the client's to measure).
      o.latency?.record('redirect_us', (performance.now() - t0) * 1000);
      return;
    }
    if (d.kind === 'error') return write(res, text(d.status, d.text, [CORS_ORIGIN]), method === 'HEAD');
    // A stream asked for on a connection kept alive from an earlier request: streams are the
    // Icecast-compatible door's (never chunked), which gets the client's next, fresh connection.
    const q = req.getQuery();
    const self = q ? `${path}?${q}` : path;
    write(res, text(302, `${self}\n`, [['Location', self], CORS_ORIGIN]), method === 'HEAD', true);
  };
  return (App() as AdoptingApp)
    .get('/*', handle('GET'))
    .head('/*', handle('HEAD'))
    .options('/*', handle('OPTIONS'))
    .any('/*', (res) => write(res, text(405, 'method not allowed\n', [['Allow', 'GET, HEAD, OPTIONS, PUT, SOURCE']]), false)) as AdoptingApp;
}
