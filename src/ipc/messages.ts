/**
 * Messages between the main thread and the worker threads: tagged objects
 * with a `type`, checked on receipt. Everything else the workers need comes
 * from shared memory, not from messages.
 */
import type { Config } from '../config/settings.ts';
import { LATENCY_KINDS, type EncodedLatency } from './latency.ts';

/** Main thread -> worker. */
export type ToWorker =
  | { type: 'SHUTDOWN' }
  /** The merged latency percentiles, JSON, for GET /debug/latency. */
  | { type: 'LATENCY_SUMMARY'; json: string }
  /** Fault injection for tests (only sent when RADIOAI_FAULTS=1): throw from the event loop. */
  | { type: 'CRASH'; kind: FaultKind }
  /** Who listens to `path` (every mount when null), for `radioctl listeners`; answered with SESSIONS and the same `req`. */
  | { type: 'SESSIONS'; req: number; path: string | null }
  /** The status page's live figures (live-status.ts), JSON, when they change. */
  | { type: 'LIVE_STATUS'; json: string }
  /** A new certificate and key (PEM) for HTTPS_PORT: new connections use them; a worker not yet serving HTTPS starts. */
  | { type: 'TLS'; cert: string; key: string };

/**
 * The ways a worker can fail, injected in tests (RADIOAI_FAULTS=1) by the
 * CRASH message or by a request for /debug/fault/KIND from loopback:
 * an exception thrown inside a request's handler, from a timer, a promise
 * rejected with nobody listening, a loop that never returns, memory
 * allocated without end, and a worker that closes its listen sockets but
 * lives on ('deaf', the state a half-finished error path once left behind).
 */
export const FAULT_KINDS = ['throw', 'timer', 'reject', 'wedge', 'oom', 'deaf'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
export const isFaultKind = (v: unknown): v is FaultKind => (FAULT_KINDS as readonly unknown[]).includes(v);

/** Worker -> main thread. */
export type FromWorker =
  | { type: 'READY'; id: number; listening: string[] }
  | { type: 'LISTEN_FAILED'; id: number; code: string; message: string }
  | { type: 'CLOSED'; id: number }
  /** An uncaught error: the worker closes every socket and ends; the supervisor restarts it. */
  | { type: 'FATAL'; id: number; message: string }
  /** The worker's latency histograms, encoded (latency.ts), when they changed. */
  | { type: 'LATENCY'; id: number; histograms: EncodedLatency }
  /** Finished listener requests for the listener log, once a second; `dropped` past the batch's bound. */
  /** Listener log lines, formatted (proxy/access-line.ts): `count` lines, `dropped` lost in the worker. */
  | { type: 'ACCESS'; id: number; lines: string; count: number; dropped: number }
  /** The answer to SESSIONS `req`: this worker's listeners. */
  | { type: 'SESSIONS'; id: number; req: number; sessions: ListenerSession[] };

/** A listener connected now, as `radioctl listeners` shows it; `since` is Unix ms. */
export interface ListenerSession {
  path: string;
  address: string;
  userAgent: string;
  since: number;
}

function listenerSession(v: unknown): ListenerSession | null {
  if (!isObj(v) || typeof v.path !== 'string' || typeof v.address !== 'string' || typeof v.userAgent !== 'string' || typeof v.since !== 'number') return null;
  return { path: v.path, address: v.address, userAgent: v.userAgent, since: v.since };
}

/**
 * The settings a worker thread reads: one slice of radiod's configuration,
 * named once here, so that a new worker setting is one entry in this list.
 */
export const WORKER_SETTINGS = [
  'nodeName', 'domain', 'bindAddrs', 'workers',
  'httpPort', 'icecastPort', 'icecastInternalPort', 'httpsPort', 'dnsPort',
  'icecastProxy', 'icecastBurstSize', 'icecastQueueSize',
  'nameservers', 'dnsTtl', 'dnsMaxRecords', 'dnsRrl',
  'sourceAuthFailures', 'sourceAuthLockout', 'maxConnections', 'clientConnRate', 'clientPending',
  'accessLog', 'trustedProxies', 'logFormat', 'snapshotMounts',
] as const satisfies readonly (keyof Config)[];

export type WorkerSettings = Pick<Config, (typeof WORKER_SETTINGS)[number]>;

/** The worker slice of `config`. */
export function workerSettings(config: Config): WorkerSettings {
  return Object.fromEntries(WORKER_SETTINGS.map((k) => [k, config[k]])) as unknown as WorkerSettings;
}

/** Data a worker starts with (workerData). */
export interface WorkerInit {
  id: number;
  snapshot: SharedArrayBuffer;
  /** Per-worker counters (worker-stats.ts). */
  stats: SharedArrayBuffer;
  settings: WorkerSettings;
  /** Fault injection (RADIOAI_FAULTS=1): /debug/fault/KIND from loopback breaks the worker on purpose. */
  faults: boolean;
  /** The certificate and key (PEM) for HTTPS_PORT while there are some: none, no HTTPS until a TLS message brings them. */
  tls: { cert: string; key: string } | null;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function encodedLatency(v: unknown): EncodedLatency | null {
  if (!isObj(v)) return null;
  const out: EncodedLatency = {};
  for (const k of LATENCY_KINDS) {
    const x = v[k];
    if (typeof x === 'string') out[k] = x;
    else if (x !== undefined) return null;
  }
  return out;
}

export function parseToWorker(v: unknown): ToWorker | null {
  if (!isObj(v)) return null;
  if (v.type === 'SHUTDOWN') return { type: v.type };
  if (v.type === 'CRASH') return isFaultKind(v.kind) ? { type: 'CRASH', kind: v.kind } : null;
  if (v.type === 'LATENCY_SUMMARY' && typeof v.json === 'string') return { type: 'LATENCY_SUMMARY', json: v.json };
  if (v.type === 'SESSIONS' && typeof v.req === 'number' && (v.path === null || typeof v.path === 'string')) return { type: 'SESSIONS', req: v.req, path: v.path };
  if (v.type === 'LIVE_STATUS' && typeof v.json === 'string') return { type: 'LIVE_STATUS', json: v.json };
  if (v.type === 'TLS' && typeof v.cert === 'string' && typeof v.key === 'string') return { type: 'TLS', cert: v.cert, key: v.key };
  return null;
}

export function parseFromWorker(v: unknown): FromWorker | null {
  if (!isObj(v) || typeof v.id !== 'number') return null;
  switch (v.type) {
    case 'READY':
      return Array.isArray(v.listening) ? { type: 'READY', id: v.id, listening: v.listening.map(String) } : null;
    case 'LISTEN_FAILED':
      return { type: 'LISTEN_FAILED', id: v.id, code: String(v.code), message: String(v.message) };
    case 'CLOSED':
      return { type: 'CLOSED', id: v.id };
    case 'FATAL':
      return { type: 'FATAL', id: v.id, message: String(v.message) };
    case 'LATENCY': {
      const histograms = encodedLatency(v.histograms);
      return histograms ? { type: 'LATENCY', id: v.id, histograms } : null;
    }
    case 'ACCESS': {
      if (typeof v.lines !== 'string' || typeof v.count !== 'number' || typeof v.dropped !== 'number') return null;
      // Whole lines only: what reaches the file ends in a newline, whatever a worker sent.
      if (v.lines !== '' && !v.lines.endsWith('\n')) return null;
      return { type: 'ACCESS', id: v.id, lines: v.lines, count: v.count, dropped: v.dropped };
    }
    case 'SESSIONS': {
      if (typeof v.req !== 'number' || !Array.isArray(v.sessions)) return null;
      const sessions: ListenerSession[] = [];
      for (const x of v.sessions) {
        const ok = listenerSession(x);
        if (ok === null) return null;
        sessions.push(ok);
      }
      return { type: 'SESSIONS', id: v.id, req: v.req, sessions };
    }
    default:
      return null;
  }
}
