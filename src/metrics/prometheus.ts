/**
 * Metrics in Prometheus's text exposition format (version 0.0.4), served
 * by the main thread on METRICS_ADDR at `/metrics`. Like statsd, it reads
 * the counters the workers keep in shared memory (worker-stats.ts) and the
 * totals the daemon keeps; nothing on the hot path changes for it.
 *
 * The workers' counters are 32-bit words that wrap; each becomes a running
 * total here, from its increase modulo 2^32 between two reads, so the
 * counters exposed only grow, as Prometheus expects of a counter, for as
 * long as the process lives. Latencies are summaries: each worker's HDR
 * histogram (latency.ts) is cumulative, and merging them gives exact
 * quantiles, a count and a sum, with no bucket layout to guess.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { mergeLatency, type EncodedLatency, type LatencyKind } from '../ipc/latency.ts';
import { S, sumMountListeners, sumStats } from '../ipc/worker-stats.ts';

const log = logger('metrics');

export interface Sample {
  /** Appended to the family's name: `_sum` and `_count` of a summary. */
  suffix?: '_sum' | '_count';
  labels?: Readonly<Record<string, string>>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'summary';
  samples: Sample[];
}

/** Label values escape backslash, double quote and newline; HELP text backslash and newline. */
const labelValue = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const helpText = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The exposition text of `families`, each with its HELP and TYPE lines. */
export function exposition(families: readonly Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${helpText(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const pairs = Object.entries(s.labels ?? {}).map(([k, v]) => `${k}="${labelValue(v)}"`);
      out.push(`${f.name}${s.suffix ?? ''}${pairs.length > 0 ? `{${pairs.join(',')}}` : ''} ${formatValue(s.value)}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * Running totals of wrapping 32-bit counters: `add(name, raw)` returns the
 * total after adding the raw word's increase since the last call (none on
 * the first call, which only sets the starting point).
 */
export class RunningTotals {
  readonly #last = new Map<string, number>();
  readonly #total = new Map<string, number>();

  add(name: string, raw: number): number {
    const before = this.#last.get(name);
    this.#last.set(name, raw);
    const total = (this.#total.get(name) ?? 0) + (before === undefined ? raw >>> 0 : (raw - before) >>> 0);
    this.#total.set(name, total);
    return total;
  }
}

/** Worker counter words and their metric (name, help, labels). */
const WORD_COUNTERS: [number, string, string, Record<string, string>?][] = [
  [S.REDIRECTS, 'radioai_redirects_total', 'Listeners sent to another node with a redirect.'],
  [S.SOURCES, 'radioai_sources_admitted_total', 'Source connections admitted by this node and carried to the master.'],
  [S.BAD_REQUESTS, 'radioai_http_bad_requests_total', 'HTTP requests refused as malformed.'],
  [S.UPSTREAM_RECONNECTS, 'radioai_upstream_reconnects_total', "A hub's upstream lost and another found."],
  [S.DNS_TRUNCATED, 'radioai_dns_truncated_total', 'DNS answers over UDP truncated (TC set).'],
  [S.DNS_RRL_DROPPED, 'radioai_dns_rrl_dropped_total', 'DNS answers dropped by response rate limiting.'],
  [S.DNS_RRL_SLIPPED, 'radioai_dns_rrl_slipped_total', 'DNS answers sent truncated by response rate limiting (slip).'],
  [S.DNS_TCP, 'radioai_dns_tcp_connections_total', 'DNS connections over TCP accepted.'],
  [S.DNS_NATIVE, 'radioai_dns_native_answers_total', 'DNS answers over UDP made and sent by native code, without JavaScript.'],
  [S.SOURCE_AUTH_FAILURES, 'radioai_source_auth_failures_total', 'Source logins and title updates refused for a wrong user name or password.'],
  [S.SOURCE_LOCKED_OUT, 'radioai_source_locked_out_total', 'Source logins and title updates refused from a locked-out address.'],
  [S.SOURCE_RESUMES, 'radioai_source_resumes_total', 'Sources carried on to a new upstream after theirs went away.'],
];

/** The DNS rcodes counted apart; NOERROR is the rest of the queries. */
const RCODES: [number, string][] = [[S.DNS_NXDOMAIN, 'nxdomain'], [S.DNS_REFUSED, 'refused'], [S.DNS_FORMERR, 'formerr'], [S.DNS_NOTIMP, 'notimp']];

const LATENCIES: [LatencyKind, string, string, number][] = [
  ['redirect_us', 'radioai_redirect_seconds', 'Time to answer a listener with a redirect, in the worker.', 1e-6],
  ['dns_answer_us', 'radioai_dns_answer_seconds', 'Time to answer a DNS query, in the worker.', 1e-6],
  ['upstream_gap_ms', 'radioai_upstream_gap_seconds', "Silence a hub's listeners had when its upstream was replaced.", 1e-3],
];

const QUANTILES = [0.5, 0.9, 0.99, 0.999];

/** What the daemon knows, read at each scrape. */
export interface PrometheusSources {
  node: string;
  version: string;
  stats: SharedArrayBuffer;
  workers: number;
  maxMounts: number;
  /** Mount paths by snapshot slot. */
  mounts: () => { path: string; slot: number }[];
  role: () => string;
  etcdConnected: () => boolean;
  /** Sources this node's Icecast holds (on the master, every live mount's). */
  icecastSources: () => number;
  latency: () => Iterable<EncodedLatency>;
  totals: () => Record<'workerRestarts' | 'icecastRestarts' | 'liquidsoapRestarts' | 'etcdErrors' | 'masterChanges' | 'peersRevoked', number>;
}

/** The metric families of one scrape. */
export function families(src: PrometheusSources, totals: RunningTotals): Family[] {
  const sum = (word: number): number => sumStats(src.stats, src.workers, src.maxMounts, word);
  const counter = (name: string, help: string, value: number): Family => ({ name, help, type: 'counter', samples: [{ value }] });
  const out: Family[] = [
    { name: 'radioai_node_info', help: 'This node: its name, version and role (master, standby or relay).', type: 'gauge', samples: [{ labels: { node: src.node, version: src.version, role: src.role() }, value: 1 }] },
    { name: 'radioai_etcd_connected', help: 'Whether etcd answers this node (1) or not (0).', type: 'gauge', samples: [{ value: src.etcdConnected() ? 1 : 0 }] },
    { name: 'radioai_listeners', help: 'Listeners connected to this node, per mount.', type: 'gauge', samples: src.mounts().map((m) => ({ labels: { mount: m.path }, value: sumMountListeners(src.stats, src.workers, src.maxMounts, m.slot) })) },
    { name: 'radioai_listeners_native', help: 'Listeners of this node served by native code (plain TCP), a part of radioai_listeners.', type: 'gauge', samples: [{ value: sum(S.NATIVE_LISTENERS) }] },
    { name: 'radioai_sources_native', help: "Sources this node's doors carry whose bytes native code carries to the master now (plain uploads once taken).", type: 'gauge', samples: [{ value: sum(S.NATIVE_SOURCES) }] },
    { name: 'radioai_icecast_sources', help: "Sources this node's Icecast holds (the master holds every live mount's).", type: 'gauge', samples: [{ value: src.icecastSources() }] },
    counter('radioai_sent_bytes_total', 'Bytes written to listeners (in whole KiB).', totals.add('kbytes', sum(S.KBYTES_SENT)) * 1024),
  ];
  for (const [word, name, help] of WORD_COUNTERS) out.push(counter(name, help, totals.add(name, sum(word))));
  const queries = totals.add('dns_queries', sum(S.DNS_QUERIES));
  const failed = RCODES.map(([word, rcode]) => ({ labels: { rcode }, value: totals.add(`dns_${rcode}`, sum(word)) }));
  out.push({
    name: 'radioai_dns_answers_total', help: 'DNS answers by response code.', type: 'counter',
    samples: [{ labels: { rcode: 'noerror' }, value: Math.max(0, queries - failed.reduce((a, s) => a + s.value, 0)) }, ...failed],
  });
  const t = src.totals();
  out.push(
    { name: 'radioai_restarts_total', help: 'Child processes and worker threads restarted after they died.', type: 'counter',
      samples: [{ labels: { child: 'worker' }, value: t.workerRestarts }, { labels: { child: 'icecast' }, value: t.icecastRestarts }, { labels: { child: 'liquidsoap' }, value: t.liquidsoapRestarts }] },
    counter('radioai_etcd_errors_total', 'etcd connections lost and leases replaced.', t.etcdErrors),
    counter('radioai_master_changes_total', 'Changes of master seen by this node.', t.masterChanges),
    counter('radioai_peers_revoked_total', "Dead nodes whose leases this node revoked (every other node found both of their ports refusing).", t.peersRevoked),
  );
  const merged = mergeLatency(src.latency());
  for (const [kind, name, help, unit] of LATENCIES) {
    const h = merged[kind];
    out.push({
      name, help, type: 'summary',
      samples: [
        ...QUANTILES.map((q) => ({ labels: { quantile: String(q) }, value: h.totalCount === 0 ? NaN : h.getValueAtPercentile(q * 100) * unit })),
        { suffix: '_sum', value: h.mean * h.totalCount * unit },
        { suffix: '_count', value: h.totalCount },
      ],
    });
  }
  return out;
}

/** `/metrics` over HTTP on METRICS_ADDR (host:port). */
export class PrometheusServer {
  readonly #server: Server;
  readonly #totals = new RunningTotals();
  readonly #src: PrometheusSources;

  constructor(src: PrometheusSources) {
    this.#src = src;
    this.#server = createServer((req, res) => this.#answer(req, res));
    // Scrapers keep connections open; a stuck one must not hold memory for long.
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 10_000;
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    let body: string;
    try {
      body = exposition(families(this.#src, this.#totals));
    } catch (err) {
      log.error(`cannot render metrics: ${describe(err)}`);
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : body);
  }

  /** Listens on `host:port`; resolves with the port (for port 0). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        const a = this.#server.address();
        resolve(typeof a === 'object' && a !== null ? a.port : port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.closeAllConnections();
      this.#server.close(() => resolve());
    });
  }
}
