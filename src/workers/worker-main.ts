/**
 * Worker thread entry. Each worker runs its own uWebSockets.js app on
 * HTTP_PORT (the kernel spreads connections over the threads with
 * SO_REUSEPORT) and answers from the shared snapshot, never by asking the
 * main thread. On SHUTDOWN it closes its listen sockets and lets its event
 * loop end, which is what avoids uv_loop_close() aborts at process exit.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { App, us_listen_socket_close, type HttpResponse, type us_listen_socket } from 'uWebSockets.js';
import { parseToWorker, type FromWorker, type WorkerInit } from '../shared/messages.ts';
import { SnapshotReader } from '../shared/snapshot-reader.ts';
import { health } from './health.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const reader = new SnapshotReader(init.snapshot);
const send = (m: FromWorker): void => port.postMessage(m);

function text(res: HttpResponse, status: string, body: string): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('Content-Type', 'text/plain; charset=utf-8').end(body);
  });
}

const app = App()
  .get('/health', (res) => {
    const h = health(reader.current(), init.nodeName, init.id);
    res.cork(() => {
      res.writeStatus(h.status === 200 ? '200 OK' : '503 Service Unavailable')
        .writeHeader('Content-Type', 'application/json')
        .writeHeader('Cache-Control', 'no-store')
        .end(h.body);
    });
  })
  .any('/health', (res) => text(res, '405 Method Not Allowed', 'method not allowed\n'))
  .any('/*', (res) => text(res, '404 Not Found', 'not found\n'));

const sockets: us_listen_socket[] = [];
let pending = init.bindAddrs.length;
let failed = false;
for (const addr of init.bindAddrs) {
  app.listen(addr, init.httpPort, (sock) => {
    pending--;
    if (sock) sockets.push(sock);
    else if (!failed) {
      failed = true;
      send({ type: 'LISTEN_FAILED', id: init.id, code: 'RADIOAI_ERR_BIND', message: `cannot listen on ${addr} port ${init.httpPort}` });
    }
    if (pending === 0 && !failed) {
      send({ type: 'READY', id: init.id, listening: init.bindAddrs.map((a) => `${a}:${init.httpPort}`) });
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
  for (const s of sockets.splice(0)) us_listen_socket_close(s);
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
  else if (msg.type === 'CRASH') {
    setImmediate(() => {
      throw new Error('fault injected: worker crash');
    });
  }
}
port.on('message', onMessage);
