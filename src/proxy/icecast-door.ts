/**
 * The Icecast-compatible door on ICECAST_PORT, in every worker (Node 22
 * `reusePort`). uWS refuses HTTP/1.0 and ICE/1.0 and mis-reads streaming
 * PUTs without a length (FACTS.md), so this door speaks to the clients that
 * do: HTTP/1.0 and 1.1 listeners (with ICY metadata) are served from the
 * same hubs, and SOURCE and PUT sources, in whatever framing they use, are
 * piped unchanged to the master's Icecast, which understands them all.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { SnapshotReader } from '../shared/snapshot-reader.ts';
import { S, type WorkerStats } from '../shared/worker-stats.ts';
import { HeadParser, type RequestHead } from './http-head.ts';
import type { Hubs } from './hubs.ts';
import { ICY_METAINT } from './icy.ts';
import { guessType, routeListener } from './listen-route.ts';
import { SocketSink } from './sink.ts';
import { connectTo, masterIcecast } from './source-forward.ts';

export const DOOR_LIMITS = {
  /** A client has this long to send its whole request head (slowloris). */
  headerTimeoutMs: 10_000,
  /** Open connections per worker on this door. */
  maxConnections: 50_000,
} as const;

const REASONS: Record<number, string> = {
  200: 'OK', 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 414: 'URI Too Long',
  431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 503: 'Service Unavailable',
};

export interface DoorOptions {
  reader: SnapshotReader;
  hubs: Hubs;
  stats: WorkerStats;
  nodeName: string;
}

function reply(sock: Socket, version: string, status: number, body: string): void {
  const v = version === 'HTTP/1.1' ? 'HTTP/1.1' : 'HTTP/1.0';
  sock.end(`${v} ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

export class IcecastDoor {
  readonly #o: DoorOptions;
  readonly #servers: Server[] = [];

  constructor(o: DoorOptions) {
    this.#o = o;
  }

  listen(addrs: string[], port: number): Promise<void> {
    return Promise.all(addrs.map((host) => new Promise<void>((resolve, reject) => {
      const server = createServer({ noDelay: true }, (sock) => this.#accept(sock));
      server.maxConnections = DOOR_LIMITS.maxConnections;
      server.once('error', reject);
      server.listen({ host, port, reusePort: true, backlog: 4096 }, () => {
        server.off('error', reject);
        server.on('error', () => undefined);
        this.#servers.push(server);
        resolve();
      });
    }))).then(() => undefined);
  }

  /** Stops accepting; open streams end when the worker closes its hubs. */
  close(): void {
    for (const s of this.#servers.splice(0)) s.close();
  }

  #accept(sock: Socket): void {
    sock.on('error', () => undefined);
    const parser = new HeadParser();
    const timer = setTimeout(() => sock.destroy(), DOOR_LIMITS.headerTimeoutMs);
    const onData = (chunk: Buffer): void => {
      const r = parser.feed(chunk);
      if (r.kind === 'more') return;
      clearTimeout(timer);
      sock.off('data', onData);
      if (r.kind === 'bad') {
        this.#o.stats.add(S.BAD_REQUESTS, 1);
        reply(sock, 'HTTP/1.0', r.status, `${r.reason}\n`);
        return;
      }
      sock.pause();
      this.#route(sock, r.head, r.rest);
    };
    sock.on('data', onData);
    sock.on('close', () => clearTimeout(timer));
  }

  #route(sock: Socket, head: RequestHead, rest: Buffer): void {
    switch (head.method) {
      case 'GET':
      case 'HEAD':
        return this.#listener(sock, head);
      case 'SOURCE':
      case 'PUT':
        return this.#source(sock, head, rest);
      default:
        reply(sock, head.version, 405, 'method not allowed\n');
    }
  }

  #listener(sock: Socket, head: RequestHead): void {
    const d = routeListener(this.#o.reader.current(), head.path, { nodeName: this.#o.nodeName, proxy: true, door: true });
    if (d.kind === 'error') return reply(sock, head.version, d.status, d.text);
    if (d.kind === 'redirect') return reply(sock, head.version, 503, 'unavailable\n');
    const v = head.version === 'HTTP/1.1' ? 'HTTP/1.1' : 'HTTP/1.0';
    if (head.method === 'HEAD') {
      sock.end(`${v} 200 OK\r\nContent-Type: ${guessType(head.path)}\r\nConnection: close\r\n\r\n`);
      return;
    }
    const icy = head.headers.get('icy-metadata') === '1';
    sock.resume();
    sock.on('data', () => undefined); // listeners have nothing more to say
    this.#o.hubs.listen(head.path, {
      icy,
      begin: (h) => {
        if (sock.destroyed) return null;
        let out = `${v} 200 OK\r\nContent-Type: ${h.contentType}\r\nCache-Control: no-cache, no-store\r\n`;
        for (const [k, val] of h.headers) out += `${k}: ${val}\r\n`;
        if (icy && h.icyCapable) out += `icy-metaint: ${ICY_METAINT}\r\n`;
        out += 'Connection: close\r\n\r\n';
        sock.write(out);
        return new SocketSink(sock);
      },
      fail: (status, body) => reply(sock, head.version, status, body),
    });
  }

  #source(sock: Socket, head: RequestHead, rest: Buffer): void {
    const snap = this.#o.reader.current();
    if (!snap.mounts.some((m) => m.path === head.path)) return reply(sock, head.version, 404, 'no such mount\n');
    const target = masterIcecast(snap);
    if (!target) return reply(sock, head.version, 503, 'no master right now (it is being elected); try again in a few seconds\n');
    this.#o.stats.add(S.SOURCES, 1);
    connectTo(target).then((up) => {
      if (sock.destroyed) {
        up.destroy();
        return;
      }
      up.on('error', () => undefined);
      // The request goes on unchanged: Icecast speaks every dialect its clients use.
      up.write(head.raw);
      if (rest.length > 0) up.write(rest);
      sock.pipe(up);
      up.pipe(sock);
      sock.on('close', () => up.destroy());
      up.on('close', () => sock.destroy());
      sock.resume();
    }, () => reply(sock, head.version, 503, 'the master is not reachable right now (it may be changing); try again in a few seconds\n'));
  }
}
