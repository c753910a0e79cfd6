/**
 * The node's metrics outlets, as the settings ask for them: statsd
 * (STATSD) pushed once a tick, Prometheus (METRICS_ADDR) served when
 * scraped, both from the workers' counters and the control plane's own
 * totals. A METRICS_ADDR whose port is taken is said, and radiod serves on:
 * metrics are not worth a node that does not serve.
 */
import type { Config } from '../config/settings.ts';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { VERSION } from '../core/version.ts';
import type { EncodedLatency } from '../ipc/latency.ts';
import type { SnapshotMount } from '../ipc/snapshot.ts';
import { PrometheusServer } from '../metrics/prometheus.ts';
import { StatsdReporter } from '../metrics/statsd-reporter.ts';

const log = logger('radiod');

/** Monotonic totals the control plane keeps. */
export type Totals = Record<'workerRestarts' | 'icecastRestarts' | 'liquidsoapRestarts' | 'etcdErrors' | 'masterChanges', number>;

export interface MetricsSources {
  stats: SharedArrayBuffer;
  mounts: () => SnapshotMount[];
  totals: () => Totals;
  peersRevoked: () => number;
  role: () => string;
  etcdConnected: () => boolean;
  icecastSources: () => number;
  latency: () => Iterable<EncodedLatency>;
}

export class NodeMetrics {
  readonly #statsd: StatsdReporter | null;
  readonly #prometheus: PrometheusServer | null;
  readonly #addr: string;

  constructor(config: Config, s: MetricsSources) {
    const common = { stats: s.stats, workers: config.workers, maxMounts: config.snapshotMounts, mounts: s.mounts };
    this.#addr = config.metricsAddr;
    this.#statsd = config.statsd === '' ? null : new StatsdReporter(config.statsd, config.nodeName, { ...common, totals: s.totals });
    this.#prometheus = config.metricsAddr === '' ? null : new PrometheusServer({
      ...common,
      node: config.nodeName,
      version: VERSION,
      role: s.role,
      etcdConnected: s.etcdConnected,
      icecastSources: s.icecastSources,
      latency: s.latency,
      totals: () => ({ ...s.totals(), peersRevoked: s.peersRevoked() }),
    });
  }

  /** Opens METRICS_ADDR; a failure is logged, never thrown. */
  async listen(): Promise<void> {
    if (!this.#prometheus) return;
    const addr = this.#addr;
    const i = addr.lastIndexOf(':');
    const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
    await this.#prometheus.listen(host, Number(addr.slice(i + 1))).then(
      (port) => log.info(`Prometheus metrics at http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`),
      (err: unknown) => log.error(`cannot serve Prometheus metrics on ${addr}: ${describe(err)} (METRICS_ADDR)`),
    );
  }

  /** Once a tick: statsd's push. */
  report(): void {
    this.#statsd?.report();
  }

  async close(): Promise<void> {
    await Promise.all([this.#statsd?.close(), this.#prometheus?.close()]);
  }
}
