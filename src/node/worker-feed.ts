/**
 * What the worker threads get from the main thread besides the snapshot,
 * and what they hand back:
 *
 * - the TLS pair for HTTPS_PORT (tls-files.ts), at start and on change;
 * - the merged latency percentiles for /debug/latency, when a worker's
 *   histograms changed;
 * - the status page's figures (live-feed.ts), when they changed;
 * - after a worker restart, both again: the new one has neither;
 * - back: the listener log's lines (ACCESS), formatted by the workers, written here.
 *
 * SIGHUP's work is here too: the listener log opened again (logrotate) and
 * the TLS pair read again.
 */
import type { Config } from '../config/settings.ts';
import { TlsFiles } from '../config/tls-files.ts';
import { logger } from '../core/log.ts';
import { summarize, type EncodedLatency } from '../ipc/latency.ts';
import type { Snapshot } from '../ipc/snapshot.ts';
import { AccessLog } from '../metrics/access-log.ts';
import type { WorkerSupervisor } from '../workers/supervisor.ts';
import { LiveFeed } from './live-feed.ts';

const log = logger('radiod');

export class WorkerFeed {
  readonly #config: Config;
  readonly #workers: WorkerSupervisor;
  readonly #tls: TlsFiles;
  readonly #access: AccessLog | null;
  readonly #live = new LiveFeed();
  /** Each worker's latest latency histograms. */
  readonly #latency = new Map<number, EncodedLatency>();
  #latencyChanged = false;

  constructor(config: Config, workers: WorkerSupervisor) {
    this.#config = config;
    this.#workers = workers;
    this.#tls = new TlsFiles(config.tlsCert, config.tlsKey);
    // Before the workers start, this fills in the certificate they start with; after, it reaches the running ones.
    this.#tls.on('change', (m) => workers.setTls(m.cert, m.key));
    this.#access = config.accessLog === '' ? null : new AccessLog(config.accessLog);
    const access = this.#access;
    if (access) workers.on('access', (lines, count, dropped) => access.write(lines, count, dropped));
    workers.on('restart', () => {
      this.#latencyChanged = true;
      this.#live.resend();
    });
    workers.on('latency', (id, h) => {
      this.#latency.set(id, { ...this.#latency.get(id), ...h });
      this.#latencyChanged = true;
    });
  }

  /** Each worker's latest latency histograms (for the metrics). */
  latency(): Iterable<EncodedLatency> {
    return this.#latency.values();
  }

  /** This node serves HTTPS: it has a certificate. */
  get https(): boolean {
    return this.#tls.current !== null;
  }

  /** Reads the TLS pair (before the workers start, so that they start with it) and watches it. */
  start(): void {
    this.#tls.start();
  }

  /** Once a tick: what changed goes to the workers. */
  tick(snap: Snapshot, candidates: readonly string[], perNode: (node: string, path: string) => number, now: number): void {
    if (this.#latencyChanged) {
      this.#latencyChanged = false;
      this.#workers.broadcast({ type: 'LATENCY_SUMMARY', json: JSON.stringify({ node: this.#config.nodeName, ...summarize(this.#latency.values()) }) });
    }
    const live = this.#live.tick(snap, candidates, perNode, now);
    if (live !== null) this.#workers.broadcast({ type: 'LIVE_STATUS', json: live });
  }

  /** SIGHUP. */
  reload(): void {
    if (this.#access) {
      this.#access.reopen();
      log.info(`SIGHUP: listener log ${this.#config.accessLog} opened again`);
    } else log.info('SIGHUP: no listener log to open again');
    if (this.#tls.reload('SIGHUP') === 'same') log.info('SIGHUP: the certificate has not changed');
  }

  /** Stops watching the TLS files (first, on stop). */
  stopWatching(): void {
    this.#tls.stop();
  }

  async close(): Promise<void> {
    await this.#access?.close();
  }
}
