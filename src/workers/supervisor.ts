/**
 * Runs the worker threads on the main thread's behalf: starts WORKERS of
 * them, restarts one that dies (logged and counted; the others keep
 * serving), and on shutdown asks each to close its listen sockets and waits
 * for it to end, terminating it only past the deadline.
 *
 * A worker is replaced in three cases: it exits; it reports an uncaught
 * error (it closes its listen sockets, but open connections could keep the
 * thread alive without serving anyone, so it is terminated after a short
 * grace); or its heartbeat word in the shared stats stops moving for
 * WATCHDOG.stallMs (a loop stuck in JavaScript answers nobody, and only
 * terminate() can stop it). Terminating a thread that holds uWS sockets is
 * safe because the conn-peek addon's teardown guard closes them.
 */
import { EventEmitter } from 'node:events';
import type { EncodedLatency } from '../ipc/latency.ts';
import { Worker } from 'node:worker_threads';
import { RadioError } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { parseFromWorker, type ListenerSession, type ToWorker, type WorkerInit } from '../ipc/messages.ts';
import { S, workerStat } from '../ipc/worker-stats.ts';

const log = logger('workers');
// Run from source (type stripping) or from the package's compiled JavaScript.
const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './worker-main.ts' : './worker-main.js', import.meta.url);

export const WATCHDOG = {
  /** How often heartbeats are compared. */
  checkMs: 500,
  /**
   * A worker whose heartbeat has not moved for this long is replaced. Its
   * heartbeat moves every 100 ms; a few seconds leaves room for a long
   * garbage collection on a loaded machine.
   */
  stallMs: 4000,
  /** A worker that reported an uncaught error and is still there after this is terminated. */
  fatalGraceMs: 1000,
  /**
   * Old space of one worker, MiB. A runaway allocation ends that worker
   * (the supervisor replaces it) instead of the whole process.
   */
  heapMb: 2048,
} as const;

export interface SupervisorEvents {
  restart: [id: number];
  latency: [id: number, histograms: EncodedLatency];
  access: [lines: string, count: number, dropped: number];
}

interface Slot {
  worker: Worker | null;
  ready: boolean;
  backoffMs: number;
  timer: NodeJS.Timeout | null;
  /** The heartbeat last seen, and when it last moved. */
  beat: number;
  beatAt: number;
  /** Set once the worker is being terminated, so it is not terminated twice. */
  ending: boolean;
}

export class WorkerSupervisor extends EventEmitter<SupervisorEvents> {
  #base: Omit<WorkerInit, 'id'>;
  readonly #slots: Slot[] = [];
  #stopping = false;
  readonly #watchdog: NodeJS.Timeout;
  restarts = 0;
  #sessionReq = 0;
  readonly #sessionWaits = new Map<number, (sessions: ListenerSession[]) => void>();
  /** Workers replaced because their heartbeat stopped. */
  stalls = 0;

  constructor(count: number, base: Omit<WorkerInit, 'id'>) {
    super();
    this.#base = base;
    for (let i = 0; i < count; i++) this.#slots.push({ worker: null, ready: false, backoffMs: 100, timer: null, beat: 0, beatAt: 0, ending: false });
    this.#watchdog = setInterval(() => this.#checkHeartbeats(Date.now()), WATCHDOG.checkMs);
    this.#watchdog.unref();
  }

  #checkHeartbeats(now: number): void {
    this.#slots.forEach((slot, id) => {
      if (!slot.worker || !slot.ready || slot.ending) return;
      const beat = workerStat(this.#base.stats, id, this.#base.settings.snapshotMounts, S.HEARTBEAT);
      if (beat !== slot.beat) {
        slot.beat = beat;
        slot.beatAt = now;
      } else if (now - slot.beatAt >= WATCHDOG.stallMs) {
        this.stalls++;
        log.error(`worker ${id} has not answered for ${((now - slot.beatAt) / 1000).toFixed(1)} s; replacing it`);
        this.#end(slot);
      }
    });
  }

  /** Replaces every running worker (they are terminated; their exit handlers start new ones). */
  replaceAll(why: string): void {
    log.error(`replacing every worker: ${why}`);
    for (const slot of this.#slots) this.#end(slot);
  }

  /** Terminates a worker that cannot end by itself; its exit handler starts the replacement. */
  #end(slot: Slot): void {
    const w = slot.worker;
    if (!w || slot.ending) return;
    slot.ending = true;
    slot.ready = false;
    void w.terminate();
  }

  get readyCount(): number {
    return this.#slots.filter((s) => s.ready).length;
  }

  /** Starts every worker; resolves when all listen, rejects if one cannot. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      let waiting = this.#slots.length;
      this.#slots.forEach((_, id) =>
        this.#spawn(id, (err) => {
          if (err) reject(err);
          else if (--waiting === 0) resolve();
        }),
      );
    });
  }

  #spawn(id: number, onStarted?: (err?: Error) => void): void {
    const slot = this.#slots[id]!;
    slot.timer = null;
    const worker = new Worker(ENTRY, {
      workerData: { ...this.#base, id } satisfies WorkerInit,
      name: `radiod-worker-${id}`,
      resourceLimits: { maxOldGenerationSizeMb: WATCHDOG.heapMb },
    });
    slot.worker = worker;
    slot.ready = false;
    slot.ending = false;
    worker.on('message', (raw: unknown) => {
      const msg = parseFromWorker(raw);
      if (!msg) {
        log.error(`worker ${id}: malformed message ignored`);
        return;
      }
      if (msg.type === 'READY') {
        slot.ready = true;
        slot.backoffMs = 100;
        slot.beat = workerStat(this.#base.stats, id, this.#base.settings.snapshotMounts, S.HEARTBEAT);
        slot.beatAt = Date.now();
        if (onStarted) log.debug(`worker ${id} listening on ${msg.listening.join(', ')}`);
        else log.info(`worker ${id} serving again`);
        onStarted?.();
        onStarted = undefined;
      } else if (msg.type === 'LATENCY') {
        this.emit('latency', id, msg.histograms);
      } else if (msg.type === 'ACCESS') {
        this.emit('access', msg.lines, msg.count, msg.dropped);
      } else if (msg.type === 'SESSIONS') {
        this.#sessionWaits.get(msg.req)?.(msg.sessions);
      } else if (msg.type === 'FATAL') {
        log.error(`worker ${id} failed: ${msg.message}`);
        slot.ready = false;
        // It has closed its listen sockets; open connections may keep its thread alive serving nobody.
        setTimeout(() => {
          if (slot.worker === worker) this.#end(slot);
        }, WATCHDOG.fatalGraceMs).unref();
      } else if (msg.type === 'LISTEN_FAILED') {
        const err = new RadioError('RADIOAI_ERR_BIND', msg.message);
        if (onStarted) {
          onStarted(err);
          onStarted = undefined;
        } else log.error(`worker ${id}: ${msg.message}`);
      }
    });
    worker.on('error', (err) => {
      log.error(`worker ${id} failed: ${err.stack ?? err.message}`);
    });
    worker.on('exit', (code) => {
      if (slot.worker !== worker) return;
      slot.worker = null;
      slot.ready = false;
      if (this.#stopping) return;
      this.restarts++;
      log.error(`worker ${id} exited with code ${code}; restarting in ${slot.backoffMs} ms`);
      this.emit('restart', id);
      slot.timer = setTimeout(() => this.#spawn(id), slot.backoffMs);
      slot.backoffMs = Math.min(slot.backoffMs * 2, 5000);
      if (onStarted) {
        onStarted(new RadioError('RADIOAI_ERR_WORKER_EXIT', `worker ${id} exited with code ${code} while starting`));
        onStarted = undefined;
      }
    });
  }

  /**
   * Who listens now, from every ready worker (`radioctl listeners`): what
   * the workers answer within `timeoutMs`; a worker that does not answer
   * in time is left out.
   */
  sessions(path: string | null, timeoutMs = 500): Promise<ListenerSession[]> {
    const req = ++this.#sessionReq;
    const ready = this.#slots.filter((s) => s.ready && s.worker);
    return new Promise((resolve) => {
      const got: ListenerSession[] = [];
      let left = ready.length;
      const done = (): void => {
        clearTimeout(timer);
        this.#sessionWaits.delete(req);
        resolve(got);
      };
      const timer = setTimeout(done, timeoutMs);
      this.#sessionWaits.set(req, (sessions) => {
        got.push(...sessions);
        if (--left <= 0) done();
      });
      if (left === 0) return done();
      for (const s of ready) s.worker!.postMessage({ type: 'SESSIONS', req, path } satisfies ToWorker);
    });
  }

  /** A new certificate for HTTPS_PORT: every running worker gets it, and so does every worker started from now on. */
  setTls(cert: string, key: string): void {
    this.#base = { ...this.#base, tls: { cert, key } };
    this.broadcast({ type: 'TLS', cert, key });
  }

  /** Sends `msg` to every running worker. */
  broadcast(msg: ToWorker): void {
    for (const s of this.#slots) s.worker?.postMessage(msg);
  }

  post(id: number, msg: ToWorker): boolean {
    const w = this.#slots[id]?.worker;
    if (!w) return false;
    w.postMessage(msg);
    return true;
  }

  /** Asks every worker to close and waits for all to exit (terminating after `graceMs`). */
  async stop(graceMs = 5000): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#watchdog);
    await Promise.all(
      this.#slots.map(async (slot) => {
        if (slot.timer) clearTimeout(slot.timer);
        const w = slot.worker;
        if (!w) return;
        const exited = new Promise<void>((r) => w.once('exit', () => r()));
        w.postMessage({ type: 'SHUTDOWN' } satisfies ToWorker);
        const t = setTimeout(() => {
          log.warn(`worker ${w.threadId} did not finish in ${graceMs} ms; terminating it`);
          void w.terminate();
        }, graceMs);
        await exited;
        clearTimeout(t);
      }),
    );
  }
}
