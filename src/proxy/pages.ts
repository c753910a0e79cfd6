/**
 * The short answers every public port gives, whichever transport carries
 * the request: /health, the status page, /status-json.xsl, playlists,
 * /debug/latency (loopback peers only) and CORS preflights. Pages built
 * from the snapshot are rendered once per published snapshot, not per
 * request. Anything else (listeners, sources, title updates) is not a page:
 * answer() returns null for it.
 */
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { health } from './health.ts';
import { CORS_ORIGIN, preflight, say, type Answer } from './answers.ts';
import { PLAYLIST_TYPES, m3u, playlistOf, pls, streamUrl, type Scheme } from './playlist.ts';
import { statusJson } from './status-json.ts';
import { PAGE_HEADERS, liveFragments, statusPage } from './status-page.ts';
import { liveFromSnapshot, type LiveStatus } from '../ipc/live-status.ts';

export interface PagesOptions {
  reader: SnapshotReader;
  nodeName: string;
  worker: number;
  domain: string;
  /** The public port these pages are served on: playlists and listen URLs name it. */
  port: number;
  /** How that port is spoken to: https on HTTPS_PORT. http when absent. */
  scheme?: Scheme;
  /** When radiod started, for the status JSON. */
  startedAt: string;
  /** The main thread's latest live figures for the status page; null until it has sent some. */
  live?: () => LiveStatus | null;
  /** The merged latency percentiles (JSON) for GET /debug/latency. */
  latencyJson?: () => string;
  /** Fault injection (tests only): breaks the worker for GET /debug/fault/KIND from loopback; false for an unknown kind. */
  fault?: (kind: string) => boolean;
}

/** Loopback peers only: /debug pages are for the operator on the machine. */
export function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1' || addr === '0000:0000:0000:0000:0000:0000:0000:0001' || /^(0000:){5}ffff:7f/i.test(addr) || addr.startsWith('::ffff:127.');
}

const JSON_NO_STORE: [string, string][] = [['Content-Type', 'application/json'], ['Cache-Control', 'no-store']];

export class Pages {
  readonly #o: PagesOptions;
  #seq = -1;
  #live: LiveStatus | null = null;
  /** Each page as last rendered, until the snapshot or the live figures change; rendered only when asked for. */
  #cache: { html?: string; fragments?: string; json?: string } = {};

  constructor(o: PagesOptions) {
    this.#o = o;
  }

  /** The answer to a page request, or null when `path` is not a page. `peer` is the client's address. */
  answer(method: string, path: string, peer: string): Answer | null {
    if (method === 'OPTIONS') return preflight();
    if (method !== 'GET' && method !== 'HEAD') return null;
    switch (path) {
      case '/health': {
        const h = health(this.#o.reader.current(), this.#o.nodeName, this.#o.worker);
        return { status: h.status, headers: JSON_NO_STORE, body: h.body };
      }
      case '/debug/latency':
        if (!isLoopback(peer)) return say('notFound');
        return { status: 200, headers: JSON_NO_STORE, body: this.#o.latencyJson?.() ?? '{}' };
      case '/':
        return { status: 200, headers: PAGE_HEADERS, body: this.#page('html') };
      case '/status/live.json':
        return { status: 200, headers: JSON_NO_STORE, body: this.#page('fragments') };
      case '/status-json.xsl':
        return { status: 200, headers: [['Content-Type', 'application/json; charset=utf-8'], ['Cache-Control', 'no-cache'], CORS_ORIGIN], body: this.#page('json') };
      default:
        if (path.startsWith('/debug/fault/') && this.#o.fault && isLoopback(peer)) {
          return this.#o.fault(path.slice('/debug/fault/'.length)) ? say('faultInjected') : say('noSuchFault');
        }
        return this.#playlist(path);
    }
  }

  #playlist(path: string): Answer | null {
    const pl = playlistOf(path);
    if (!pl) return null;
    if (!this.#o.reader.current().mounts.some((m) => m.path === pl.mount)) return say('noSuchMount', [CORS_ORIGIN]);
    const u = streamUrl(this.#o.domain, this.#o.port, pl.mount, this.#o.scheme);
    return { status: 200, headers: [['Content-Type', PLAYLIST_TYPES[pl.kind]], CORS_ORIGIN], body: pl.kind === 'm3u' ? m3u(u) : pls(u, pl.mount) };
  }

  #page(kind: 'html' | 'fragments' | 'json'): string {
    const snap = this.#o.reader.current();
    const live = this.#o.live?.() ?? null;
    if (snap.seq !== this.#seq || live !== this.#live) {
      this.#seq = snap.seq;
      this.#live = live;
      this.#cache = {};
    }
    const c = this.#cache;
    if (kind === 'json') return (c.json ??= statusJson(snap, this.#o.domain, this.#o.port, this.#o.startedAt, this.#o.scheme));
    const shown = (): LiveStatus => live ?? liveFromSnapshot(snap);
    if (kind === 'html') return (c.html ??= statusPage(shown(), this.#o.domain, this.#o.nodeName));
    return (c.fragments ??= liveFragments(shown(), this.#o.domain, this.#o.nodeName));
  }
}
