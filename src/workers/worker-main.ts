/**
 * Worker thread entry. Each worker runs its own front door on HTTP_PORT and
 * ICECAST_PORT (the kernel spreads connections over the threads with
 * SO_REUSEPORT), which hands each connection to a uWebSockets.js app or to
 * the Icecast-compatible door, and its own DNS server; all answer from the
 * shared snapshot, never by asking the main thread. On SHUTDOWN it
 * closes its listen sockets and lets its event loop end, which is what
 * avoids uv_loop_close() aborts at process exit.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createFront } from '../proxy/http-front.ts';
import { AccessBatch, ListenerLog, trustedProxies } from '../proxy/access-record.ts';
import { Hubs } from '../proxy/hubs.ts';
import { DnsServer } from '../dns/server.ts';
import { FrontDoor } from '../proxy/front-door.ts';
import { IcecastDoor, type DoorPort } from '../proxy/icecast-door.ts';
import { ListenRouter } from '../proxy/listen-route.ts';
import { Pages } from '../proxy/pages.ts';
import { isFaultKind, parseToWorker, type FromWorker, type WorkerInit } from '../ipc/messages.ts';
import { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { S, WorkerStats } from '../ipc/worker-stats.ts';
import { guardThreadTeardown } from '../proxy/conn-peek.ts';
import { injectFault } from './faults.ts';
import { LatencyRecorder } from '../ipc/latency.ts';
import { logger, setLogFormat } from '../core/log.ts';
import type { LiveStatus } from '../ipc/live-status.ts';

const init = workerData as WorkerInit;
const s = init.settings;
setLogFormat(s.logFormat);
const tlsLog = logger('tls');
const port = parentPort!;
// Before any uWS socket exists: lets the supervisor end this thread at any moment without aborting the process.
guardThreadTeardown();
const reader = new SnapshotReader(init.snapshot);
const stats = new WorkerStats(init.stats, init.id, s.snapshotMounts);
const send = (m: FromWorker): void => port.postMessage(m);
const latency = new LatencyRecorder();
/** The cluster-wide summary the main thread last sent, for GET /debug/latency. */
let latencyJson = '{}';
/** The status page's figures the main thread last sent. */
let live: LiveStatus | null = null;
const latencyTimer = setInterval(() => {
  // Redirects native code answered: their mean time, as often as they came.
  const known = front.knownAnswered();
  if (known.count > 0) latency.record('redirect_us', known.ns / known.count / 1000, known.count);
  const histograms = latency.take();
  if (histograms) send({ type: 'LATENCY', id: init.id, histograms });
}, 2000);
latencyTimer.unref();
/** The watchdog's heartbeat (supervisor.ts): moves as long as this loop turns. */
const heartbeat = setInterval(() => stats.add(S.HEARTBEAT, 1), 100);
heartbeat.unref();

const hubs = new Hubs({
  reader,
  stats,
  nodeName: s.nodeName,
  local: { name: s.nodeName, host: s.bindAddrs[0]!, port: s.icecastInternalPort },
  burstBytes: s.icecastBurstSize,
  queueBytes: s.icecastQueueSize,
  latency,
});
const startedAt = new Date(Date.now() - process.uptime() * 1000).toISOString();
/** GET /debug/fault/KIND (tests only): breaks this worker inside the request's own handler. */
function fault(kind: string): boolean {
  if (!isFaultKind(kind)) return false;
  injectFault(kind, closeListeners);
  return true;
}
/** What each public port answers with: all take every request; playlists and redirects name their own port and scheme. */
function doorPort(kind: 'http' | 'icecast' | 'https', port: number): DoorPort {
  const scheme = kind === 'https' ? 'https' : 'http';
  return {
    pages: new Pages({ reader, nodeName: s.nodeName, worker: init.id, domain: s.domain, port, scheme, startedAt, live: () => live, latencyJson: () => latencyJson, ...(init.faults ? { fault } : {}) }),
    router: new ListenRouter({ nodeName: s.nodeName, proxy: s.icecastProxy, port: kind, domain: s.domain }),
  };
}
const ports = { http: doorPort('http', s.httpPort), icecast: doorPort('icecast', s.icecastPort), https: doorPort('https', s.httpsPort) };
/** Finished listener requests, handed to the main thread's listener log once a second. */
const accessBatch = new AccessBatch(s.accessLog !== '', (lines, count, dropped) => send({ type: 'ACCESS', id: init.id, lines, count, dropped }));
const listenerLog = new ListenerLog(accessBatch, trustedProxies(s.trustedProxies), s.nodeName);
const apps = {
  http: createFront({ reader, hubs, stats, latency, listenerLog, titles: (peer, r) => door.updateTitle(peer, r), ...ports.http }),
  icecast: createFront({ reader, hubs, stats, latency, listenerLog, titles: (peer, r) => door.updateTitle(peer, r), ...ports.icecast }),
};
const door = new IcecastDoor({ reader, hubs, stats, sourceAuth: { failures: s.sourceAuthFailures, lockoutSeconds: s.sourceAuthLockout }, listenerLog });
const front = new FrontDoor({
  reader, door, limits: { maxConnections: s.maxConnections, clientRate: s.clientConnRate, clientPending: s.clientPending, workers: s.workers },
  knownAnswers: { stats, log: listenerLog },
});
// The listener log's lines for redirects native code answered, once a second like the log's own batches.
const knownLogTimer = setInterval(() => front.noteKnownLog(), 1000);
knownLogTimer.unref();
const dns = new DnsServer({
  reader,
  stats,
  zone: { domain: s.domain, nameservers: s.nameservers, ttl: s.dnsTtl, apexTtl: 3600, maxRecords: s.dnsMaxRecords },
  rrl: s.dnsRrl,
  latency,
});

/** HTTPS_PORT with a (new) certificate: listening from the first one on, a new context for new connections after. */
function serveTls(cert: string, key: string): Promise<void> {
  return front.listenTls(s.bindAddrs, s.httpsPort, ports.https, { cert, key });
}

Promise.all([
  front.listen(s.bindAddrs, s.httpPort, ports.http, apps.http),
  front.listen(s.bindAddrs, s.icecastPort, ports.icecast, apps.icecast),
  dns.listen(s.bindAddrs, s.dnsPort),
  ...(init.tls !== null ? [serveTls(init.tls.cert, init.tls.key)] : []),
]).then(
  () => send({ type: 'READY', id: init.id, listening: s.bindAddrs.map((a) => `${a}:${s.httpPort}`) }),
  (err: Error) => send({
    type: 'LISTEN_FAILED', id: init.id, code: 'RADIOAI_ERR_BIND',
    message: `cannot listen on port ${s.httpPort}, ${s.icecastPort}, ${s.dnsPort}${init.tls !== null ? ` or ${s.httpsPort} (HTTPS)` : ''}: ${err.message}`,
  }),
);

let closed = false;

/** Stops accepting on every port; what is connected stays. */
function closeListeners(): void {
  front.close();
  dns.close();
}

/**
 * Ends the worker cleanly: listen sockets first, then (`force`) every open
 * connection. A uWS handle still open when the thread's loop closes aborts
 * the whole process, so every way out of the worker goes through here.
 */
function close(force: boolean): void {
  if (closed) return;
  closed = true;
  clearInterval(latencyTimer);
  clearInterval(heartbeat);
  clearInterval(knownLogTimer);
  front.noteKnownLog();
  front.close();
  dns.close();
  hubs.close();
  const closeApps = (): void => {
    front.closeKnown();
    apps.http.close();
    apps.icecast.close();
  };
  if (force) closeApps();
  else setTimeout(closeApps, 1000).unref();
  port.off('message', onMessage);
  // What the listener log has so far; sessions whose sockets close after this are not in it.
  accessBatch.close();
  send({ type: 'CLOSED', id: init.id });
  port.close();
}

// An uncaught error (a rejected promise nobody handles included) leaves this worker in
// an unknown state: it closes its sockets and reports; the supervisor terminates it if
// open connections keep the thread alive, and starts a replacement.
process.on('uncaughtException', (err) => {
  if (!closed) send({ type: 'FATAL', id: init.id, message: err.stack ?? String(err) });
  process.exitCode = 1;
  close(true);
});

function onMessage(raw: unknown): void {
  const msg = parseToWorker(raw);
  if (!msg) return;
  if (msg.type === 'SHUTDOWN') close(false);
  else if (msg.type === 'LATENCY_SUMMARY') latencyJson = msg.json;
  else if (msg.type === 'LIVE_STATUS') live = JSON.parse(msg.json) as LiveStatus;
  else if (msg.type === 'CRASH') setImmediate(() => injectFault(msg.kind, closeListeners));
  else if (msg.type === 'TLS') {
    const first = !front.servesTls(s.httpsPort);
    serveTls(msg.cert, msg.key).then(
      () => (first && init.id === 0 ? tlsLog.info(`HTTPS on port ${s.httpsPort}`) : undefined),
      (err: Error) => tlsLog.error(`cannot serve HTTPS on port ${s.httpsPort}: ${err.message}`),
    );
  } else if (msg.type === 'SESSIONS') send({ type: 'SESSIONS', id: init.id, req: msg.req, sessions: hubs.sessions(msg.path) });
}
port.on('message', onMessage);
