/**
 * Can this node reach etcd at all? A TCP connection to each client URL
 * tells "cut off from every member" (nothing answers: this node alone is
 * lost, the others will drop it) from "etcd has no quorum" (a member
 * answers but cannot serve: the whole cluster is in the same state and
 * every node should keep serving what it knows). The gRPC client cannot
 * tell these apart: both look like calls that time out.
 */
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect } from 'node:net';

export interface Endpoint {
  url: string;
  host: string;
  port: number;
}

export function parseEndpoint(url: string): Endpoint {
  const u = new URL(url);
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  return { url, host: u.hostname.replace(/^\[|\]$/g, ''), port };
}

/** True when something accepts a TCP connection at the endpoint within `timeoutMs`. */
export function reachable(e: Endpoint, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: e.host, port: e.port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export interface ProbeTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** A member's /health answer (status and body), or null when none came. */
function health(e: Endpoint, tls: ProbeTls | null, timeoutMs: number): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const secure = e.url.startsWith('https:');
    const opts = { host: e.host, port: e.port, path: '/health', timeout: timeoutMs, agent: false as const, ...(secure && tls ? tls : {}) };
    const req = (secure ? httpsGet : httpGet)(opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/**
 * Asks a member's own /health (served on its client URL) whether it is part
 * of a working cluster; false on any failure. With TLS it presents the
 * client certificate, so a member that requires one answers rather than
 * logging a rejected handshake.
 */
export async function memberHealthy(e: Endpoint, tls: ProbeTls | null, timeoutMs: number): Promise<boolean> {
  const h = await health(e, tls, timeoutMs);
  return h !== null && h.status === 200 && /"health"\s*:\s*"true"/.test(h.body);
}

/**
 * What holds a port where radiod would start its embedded etcd: nothing,
 * an etcd (its /health answers, e.g. Debian's etcd service on 2379), or
 * something else.
 */
export async function etcdAt(e: Endpoint, timeoutMs: number): Promise<'free' | 'etcd' | 'other'> {
  if (!(await reachable(e, timeoutMs))) return 'free';
  const h = await health(e, null, timeoutMs);
  return h !== null && /"health"\s*:/.test(h.body) ? 'etcd' : 'other';
}
