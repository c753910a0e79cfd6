/**
 * `latency`: how long a byte takes from the source to a listener, through
 * radiod's proxy (door -> master's Icecast -> hub -> listener) against
 * Icecast directly. The source is our own: every 20 ms it sends a chunk
 * that starts with a marker and its send time; listeners in the same
 * process read the time back. The first seconds are skipped (the burst on
 * connect is old audio by design). Distributions go into HDR histograms
 * and a percentile plot (SVG) is written beside the result table.
 *
 * It is measured with the probe alone on the mount, then with a crowd of
 * other listeners on it on each path (BENCH_LATENCY_CROWDS, default
 * 0,1000): radiod's hubs hold frames longer the more listen.
 */
import { connect, type Socket } from 'node:net';
import { get, type ClientRequest } from 'node:http';
import { build, type Histogram } from 'hdr-histogram-js';
import { createMount } from '../harness/radiod.ts';
import { waitFor } from '../harness/net.ts';
import type { Cluster } from './cluster.ts';
import { arrive } from './fanout.ts';

export interface LatencyResult {
  server: string;
  samples: number;
  p50ms: number;
  p90ms: number;
  p99ms: number;
  maxMs: number;
  /** Percentile -> ms, for the plot. */
  curve: [number, number][];
}

const SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 15);
const SKIP_MS = 5000;
const MARK = Buffer.from('RAIts');
const CHUNK = 400;

function startSource(host: string, port: number, path: string, user: string, pass: string): { sock: Socket; stop: () => void } {
  const sock = connect({ host, port });
  let timer: NodeJS.Timeout | null = null;
  sock.on('error', () => undefined);
  sock.on('connect', () => {
    const auth = Buffer.from(`${user}:${pass}`).toString('base64');
    sock.write(`PUT ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Basic ${auth}\r\nContent-Type: application/octet-stream\r\nIce-Public: 0\r\n\r\n`);
    timer = setInterval(() => {
      const b = Buffer.alloc(CHUNK);
      MARK.copy(b, 0);
      b.writeDoubleBE(performance.timeOrigin + performance.now(), MARK.length);
      sock.write(b);
    }, 20);
  });
  return { sock, stop: () => {
    if (timer) clearInterval(timer);
    sock.destroy();
  } };
}

/** Reads marker timestamps from the stream into `h` (µs), after SKIP_MS. */
function listen(url: string, h: Histogram): ClientRequest {
  const since = Date.now();
  let tail = Buffer.alloc(0);
  const req = get(url, { agent: false }, (res) => {
    res.on('data', (d: Buffer) => {
      const now = performance.timeOrigin + performance.now();
      const buf = tail.length > 0 ? Buffer.concat([tail, d]) : d;
      let i = buf.indexOf(MARK);
      let end = 0;
      while (i >= 0 && i + MARK.length + 8 <= buf.length) {
        const sent = buf.readDoubleBE(i + MARK.length);
        if (Date.now() - since > SKIP_MS && Number.isFinite(sent)) h.recordValue(Math.max(1, Math.round((now - sent) * 1000)));
        end = i + MARK.length + 8;
        i = buf.indexOf(MARK, end);
      }
      tail = Buffer.from(buf.subarray(Math.max(end, buf.length - (MARK.length + 8))));
    });
  });
  req.on('error', () => undefined);
  return req;
}

function result(server: string, h: Histogram): LatencyResult {
  const ms = (p: number): number => Number((h.getValueAtPercentile(p) / 1000).toFixed(2));
  const ps = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99];
  return { server, samples: h.totalCount, p50ms: ms(50), p90ms: ms(90), p99ms: ms(99), maxMs: Number((h.maxValue / 1000).toFixed(2)), curve: ps.map((p) => [p, ms(p)]) };
}

export async function latencyBench(cluster: Cluster): Promise<LatencyResult[]> {
  const p = cluster.proxy;
  const creds = await createMount(cluster.etcd.url, ['create-mount', '/latency-probe']);
  let src: ReturnType<typeof startSource> | null = null;
  await waitFor(async () => {
    src?.stop();
    src = startSource(p.host, p.icecastPort, '/latency-probe', creds.username, creds.password);
    await new Promise((r) => setTimeout(r, 1500));
    const res = await fetch(`http://${p.host}:${p.icecastInternalPort}/latency-probe`, { signal: AbortSignal.timeout(1000) }).catch(() => null);
    const ok = res?.status === 200;
    await res?.body?.cancel();
    return ok;
  }, 30_000, 'the latency probe source on Icecast');
  const crowds = (process.env.BENCH_LATENCY_CROWDS ?? '0,1000').split(',').map(Number);
  const out: LatencyResult[] = [];
  for (const crowd of crowds) {
    const proxyUrl = `http://${p.host}:${p.httpPort}/latency-probe`;
    const directUrl = `http://${p.host}:${p.icecastInternalPort}/latency-probe`;
    const others = crowd > 0 ? [await arrive(proxyUrl, crowd), await arrive(directUrl, crowd)] : [];
    const viaProxy = build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    const direct = build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    const a = listen(proxyUrl, viaProxy);
    const b = listen(directUrl, direct);
    await new Promise((r) => setTimeout(r, SECONDS * 1000 + SKIP_MS));
    a.destroy();
    b.destroy();
    for (const o of others) for (const r of o.reqs) r.destroy();
    const with_ = crowd > 0 ? `, ${crowd} other listeners` : '';
    out.push(result(`radiod proxy (door -> Icecast -> hub)${with_}`, viaProxy), result(`Icecast direct${with_}`, direct));
    await new Promise((r) => setTimeout(r, 2000));
  }
  (src as ReturnType<typeof startSource> | null)?.stop();
  return out;
}

/** A percentile plot of the latency distributions (x: percentile on a log scale of 1/(1-p)). */
export function latencySvg(rs: LatencyResult[]): string {
  const W = 640;
  const H = 360;
  const M = 50;
  const xOf = (p: number): number => M + (Math.log10(1 / (1 - Math.min(p, 99.99) / 100)) / 4) * (W - 2 * M);
  const maxMs = Math.max(1, ...rs.flatMap((r) => r.curve.map(([, v]) => v)));
  const yOf = (v: number): number => H - M - (v / maxMs) * (H - 2 * M);
  const colors = ['#c0392b', '#2c3e50', '#27ae60'];
  const lines = rs.map((r, i) => `<polyline fill="none" stroke="${colors[i % 3]}" stroke-width="2" points="${r.curve.map(([p, v]) => `${xOf(p).toFixed(1)},${yOf(v).toFixed(1)}`).join(' ')}"/>
<text x="${W - M - 200}" y="${M + 18 * i}" fill="${colors[i % 3]}" font-size="12">${r.server}</text>`);
  const ticks = ['0%', '90%', '99%', '99.9%', '99.99%'].map((t, i) => `<text x="${(M + (i / 4) * (W - 2 * M)).toFixed(1)}" y="${H - M + 16}" font-size="11" text-anchor="middle">${t}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<line x1="${M}" y1="${H - M}" x2="${W - M}" y2="${H - M}" stroke="black"/><line x1="${M}" y1="${M}" x2="${M}" y2="${H - M}" stroke="black"/>
<text x="${M}" y="${M - 10}" font-size="12">source -> listener latency, ms (max ${maxMs})</text>
<text x="${M - 6}" y="${M + 4}" font-size="11" text-anchor="end">${maxMs}</text><text x="${M - 6}" y="${H - M}" font-size="11" text-anchor="end">0</text>
${ticks.join('\n')}
${lines.join('\n')}
</svg>
`;
}
