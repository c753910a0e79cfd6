/**
 * `flashcrowd`: N listeners arriving within one second (a link shared on
 * air), evenly spread: the share whose request is answered with 200 within
 * 2 s, and the time to the status line, through radiod's proxy against the
 * node's own Icecast directly (whose listen backlog is a compile-time 5).
 */
import { connect, type Socket } from 'node:net';
import { MOUNT, type Cluster } from './cluster.ts';

export interface CrowdResult {
  server: string;
  listeners: number;
  answered200: number;
  within2s: number;
  share: number;
  p50ms: number;
  p99ms: number;
}

const N = Number(process.env.BENCH_CROWD_SIZE ?? 5000);

async function crowd(server: string, host: string, port: number, path: string, n: number): Promise<CrowdResult> {
  const times: number[] = [];
  let ok = 0;
  const socks: Socket[] = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let settled = 0;
    const done = (): void => {
      if (++settled === n) resolve();
    };
    for (let i = 0; i < n; i++) {
      // Evenly over one second.
      setTimeout(() => {
        const start = performance.now();
        const s = connect({ host, port });
        socks.push(s);
        let first = true;
        const finish = (status: number): void => {
          if (!first) return;
          first = false;
          if (status === 200) {
            ok++;
            times.push(performance.now() - start);
          }
          done();
        };
        s.setTimeout(10_000, () => {
          finish(0);
          s.destroy();
        });
        s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: radioai-bench\r\n\r\n`));
        s.on('data', (d: Buffer) => {
          if (first) finish(Number(/^HTTP\/1\.[01] (\d{3})/.exec(d.toString('latin1', 0, 16))?.[1] ?? 0));
        });
        s.on('error', () => finish(0));
        s.on('close', () => finish(0));
      }, (i * 1000) / n);
    }
  });
  const elapsed = performance.now() - t0;
  for (const s of socks) s.destroy();
  await new Promise((r) => setTimeout(r, 3000));
  const sorted = times.sort((a, b) => a - b);
  const pct = (p: number): number => (sorted.length === 0 ? 0 : Number(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(1)));
  const within = sorted.filter((t) => t <= 2000).length;
  void elapsed;
  return { server, listeners: n, answered200: ok, within2s: within, share: Number((within / n).toFixed(3)), p50ms: pct(50), p99ms: pct(99) };
}

export async function flashcrowdBench(cluster: Cluster): Promise<CrowdResult[]> {
  const p = cluster.proxy;
  return [
    await crowd('radiod proxy', p.host, p.httpPort, MOUNT, N),
    await crowd('Icecast direct', p.host, p.icecastInternalPort, MOUNT, N),
  ];
}
