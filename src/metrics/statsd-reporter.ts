/**
 * Metrics to statsd, sent from the main thread once a second: the workers
 * only add to counters in shared memory (worker-stats.ts), so the hot path
 * never formats or sends a metric. Counters go out as the difference since
 * the last report, gauges as the current value. Names are
 * `radioai.NODE.<metric>`, plain statsd (no tags), so any statsd accepts them.
 */
import { StatsD } from 'hot-shots';
import { logger } from '../core/log.ts';
import { describe } from '../core/errors.ts';
import { S, sumMountListeners, sumStats } from '../ipc/worker-stats.ts';

const log = logger('metrics');

/** What the daemon knows beyond the worker counters, read at each report. */
export interface MetricsSources {
  stats: SharedArrayBuffer;
  workers: number;
  maxMounts: number;
  /** Mount paths by snapshot slot. */
  mounts: () => { path: string; slot: number }[];
  /** Monotonic totals kept by the main thread. */
  totals: () => Record<'workerRestarts' | 'icecastRestarts' | 'liquidsoapRestarts' | 'etcdErrors' | 'masterChanges', number>;
}

/** Counter words of the worker rows and their metric names. */
const COUNTERS: [number, string][] = [
  [S.REDIRECTS, 'redirects'],
  [S.SOURCES, 'sources'],
  [S.BAD_REQUESTS, 'http.bad_requests'],
  [S.UPSTREAM_RECONNECTS, 'upstream.reconnects'],
  [S.DNS_QUERIES, 'dns.queries'],
  [S.DNS_NXDOMAIN, 'dns.rcode.nxdomain'],
  [S.DNS_REFUSED, 'dns.rcode.refused'],
  [S.DNS_FORMERR, 'dns.rcode.formerr'],
  [S.DNS_NOTIMP, 'dns.rcode.notimp'],
  [S.DNS_TRUNCATED, 'dns.truncated'],
  [S.DNS_RRL_DROPPED, 'dns.rrl.dropped'],
  [S.DNS_RRL_SLIPPED, 'dns.rrl.slipped'],
  [S.DNS_TCP, 'dns.tcp_connections'],
  [S.DNS_NATIVE, 'dns.native_answers'],
  [S.SOURCE_AUTH_FAILURES, 'sources.auth_failures'],
  [S.SOURCE_LOCKED_OUT, 'sources.locked_out'],
  [S.SOURCE_RESUMES, 'sources.resumed'],
];

/** A statsd-safe name for a mount: `/live.ogg` -> `live_ogg`. */
export function metricName(path: string): string {
  return path.replace(/^\//, '').replace(/[^A-Za-z0-9_-]/g, '_') || '_';
}

export class StatsdReporter {
  readonly #client: StatsD;
  readonly #src: MetricsSources;
  readonly #last = new Map<string, number>();
  #errors = 0;

  constructor(target: string, nodeName: string, src: MetricsSources) {
    const i = target.lastIndexOf(':');
    const host = target.slice(0, i).replace(/^\[|\]$/g, '');
    this.#src = src;
    this.#client = new StatsD({
      host,
      port: Number(target.slice(i + 1)),
      prefix: `radioai.${nodeName.replace(/\./g, '_')}.`,
      maxBufferSize: 1400,
      bufferFlushInterval: 1000,
      // An unreachable statsd must never disturb serving: note it once per burst.
      errorHandler: (err) => {
        if (this.#errors++ % 100 === 0) log.warn(`statsd ${target}: ${describe(err)}`);
      },
    });
  }

  /** The increase of a monotonic total since the last report (0 on the first). */
  #delta(name: string, value: number): number {
    const before = this.#last.get(name);
    this.#last.set(name, value);
    if (before === undefined) return 0;
    // Worker counters are Int32 and wrap; a difference modulo 2^32 stays right.
    return (value - before) >>> 0;
  }

  #count(name: string, value: number): void {
    const d = this.#delta(name, value);
    if (d > 0) this.#client.increment(name, d);
  }

  report(): void {
    const s = this.#src;
    const sum = (word: number): number => sumStats(s.stats, s.workers, s.maxMounts, word);
    this.#client.gauge('listeners', sum(S.LISTENERS));
    this.#client.gauge('listeners.native', sum(S.NATIVE_LISTENERS));
    this.#client.gauge('sources.native', sum(S.NATIVE_SOURCES));
    for (const m of s.mounts()) {
      this.#client.gauge(`mount.${metricName(m.path)}.listeners`, sumMountListeners(s.stats, s.workers, s.maxMounts, m.slot));
    }
    for (const [word, name] of COUNTERS) this.#count(name, sum(word));
    const kb = this.#delta('proxy.kbytes', sum(S.KBYTES_SENT));
    if (kb > 0) this.#client.increment('proxy.bytes', kb * 1024);
    const queries = this.#delta('dns.noerror.queries', sum(S.DNS_QUERIES));
    const failed = [S.DNS_NXDOMAIN, S.DNS_REFUSED, S.DNS_FORMERR, S.DNS_NOTIMP].reduce((a, w) => a + this.#delta(`dns.noerror.${w}`, sum(w)), 0);
    if (queries - failed > 0) this.#client.increment('dns.rcode.noerror', queries - failed);
    const reconnects = this.#delta('upstream.gap', sum(S.UPSTREAM_RECONNECTS));
    if (reconnects > 0) this.#client.timing('upstream.gap', sum(S.LAST_GAP_MS));
    const t = s.totals();
    this.#count('restarts.worker', t.workerRestarts);
    this.#count('restarts.icecast', t.icecastRestarts);
    this.#count('restarts.liquidsoap', t.liquidsoapRestarts);
    this.#count('etcd.errors', t.etcdErrors);
    this.#count('master.changes', t.masterChanges);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#client.close(() => resolve()));
  }
}
