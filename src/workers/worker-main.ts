/**
 * Worker thread entry. Each worker runs its own uWebSockets.js app on
 * HTTP_PORT and its own Icecast-compatible door on ICECAST_PORT (the kernel
 * spreads connections over the threads with SO_REUSEPORT) and answers from
 * the shared snapshot, never by asking the main thread. On SHUTDOWN it
 * closes its listen sockets and lets its event loop end, which is what
 * avoids uv_loop_close() aborts at process exit.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { us_listen_socket_close, type us_listen_socket } from 'uWebSockets.js';
import { createFront } from '../proxy/http-front.ts';
import { Hubs } from '../proxy/hubs.ts';
import { DnsServer } from '../dns/server.ts';
import { IcecastDoor } from '../proxy/icecast-door.ts';
import { parseToWorker, type FromWorker, type WorkerInit } from '../shared/messages.ts';
import { SnapshotReader } from '../shared/snapshot-reader.ts';
import { WorkerStats } from '../shared/worker-stats.ts';
import { LatencyRecorder } from '../shared/latency.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const reader = new SnapshotReader(init.snapshot);
const stats = new WorkerStats(init.stats, init.id, init.maxMounts);
const send = (m: FromWorker): void => port.postMessage(m);
const latency = new LatencyRecorder();
/** The cluster-wide summary the main thread last sent, for GET /debug/latency. */
let latencyJson = '{}';
const latencyTimer = setInterval(() => {
  const histograms = latency.take();
  if (histograms) send({ type: 'LATENCY', id: init.id, histograms });
}, 2000);
latencyTimer.unref();

const hubs = new Hubs({
  reader,
  stats,
  nodeName: init.nodeName,
  local: { name: init.nodeName, host: init.bindAddrs[0]!, port: init.icecastInternalPort },
  burstBytes: init.burstBytes,
  queueBytes: init.queueBytes,
  latency,
});
const app = createFront({
  reader, hubs, stats, nodeName: init.nodeName, domain: init.domain, httpPort: init.httpPort, icecastPort: init.icecastPort, proxy: init.proxy, worker: init.id,
  latency, latencyJson: () => latencyJson,
});
const door = new IcecastDoor({ reader, hubs, stats, nodeName: init.nodeName });
const dns = new DnsServer({
  reader,
  stats,
  zone: { domain: init.domain, nameservers: init.nameservers, ttl: init.dnsTtl, apexTtl: 3600, maxRecords: init.dnsMaxRecords },
  rrl: init.dnsRrl,
  latency,
});

const sockets: us_listen_socket[] = [];
let pending = init.bindAddrs.length;
let failed = false;
const fail = (message: string): void => {
  if (failed) return;
  failed = true;
  send({ type: 'LISTEN_FAILED', id: init.id, code: 'RADIOAI_ERR_BIND', message });
};
const doorReady = Promise.all([door.listen(init.bindAddrs, init.icecastPort), dns.listen(init.bindAddrs, init.dnsPort)]).then(
  () => true,
  (err: Error) => {
    fail(`cannot listen on port ${init.icecastPort} or ${init.dnsPort}: ${err.message}`);
    return false;
  },
);
for (const addr of init.bindAddrs) {
  app.listen(addr, init.httpPort, (sock) => {
    pending--;
    if (sock) sockets.push(sock);
    else fail(`cannot listen on ${addr} port ${init.httpPort}`);
    if (pending === 0 && !failed) {
      void doorReady.then((ok) => {
        if (ok) send({ type: 'READY', id: init.id, listening: init.bindAddrs.map((a) => `${a}:${init.httpPort}`) });
      });
    }
  });
}

let closed = false;

/**
 * Ends the worker cleanly: listen sockets first, then (`force`) every open
 * connection. A uWS handle still open when the thread's loop closes aborts
 * the whole process, so every way out of the worker goes through here.
 */
function close(force: boolean): void {
  if (closed) return;
  closed = true;
  clearInterval(latencyTimer);
  for (const s of sockets.splice(0)) us_listen_socket_close(s);
  door.close();
  dns.close();
  hubs.close();
  if (force) app.close();
  else setTimeout(() => app.close(), 1000).unref();
  port.off('message', onMessage);
  send({ type: 'CLOSED', id: init.id });
  port.close();
}

process.on('uncaughtException', (err) => {
  send({ type: 'FATAL', id: init.id, message: err.stack ?? String(err) });
  process.exitCode = 1;
  close(true);
});

function onMessage(raw: unknown): void {
  const msg = parseToWorker(raw);
  if (!msg) return;
  if (msg.type === 'SHUTDOWN') close(false);
  else if (msg.type === 'LATENCY_SUMMARY') latencyJson = msg.json;
  else if (msg.type === 'CRASH') {
    setImmediate(() => {
      throw new Error('fault injected: worker crash');
    });
  }
}
port.on('message', onMessage);
