/**
 * `npm run bench -- failover`: a master's death, BENCH_FAILOVER_RUNS times
 * (default 10), on a three-node loopback cluster of its own (LEASE_TTL 3).
 * An ffmpeg source that never reconnects streams through a surviving
 * node's Icecast-compatible port; a listener on each surviving node; the
 * master's radiod and Icecast are killed with SIGKILL. Per run: the time to
 * a new master both survivors agree on, the longest silence a listener
 * heard, whether the source program and every listener connection were
 * kept. Then the dead node is started again (as a relay) and the next run
 * kills whichever node is master. There is no peer: plain Icecast has no
 * failover to compare with; the figures stand against the goal.
 */
import { get, type ClientRequest } from 'node:http';
import { Cluster } from '../harness/cluster.ts';
import { alive, waitFor } from '../harness/net.ts';
import { run, tempDir } from '../harness/process.ts';
import { createMount } from '../harness/radiod.ts';

export interface FailoverRun {
  run: number;
  electedMs: number;
  /** Longest silence of any listener on a surviving node, ms. */
  longestSilenceMs: number;
  sourceKept: boolean;
  listenersKept: boolean;
}

/** A listener that only notes when data arrives. */
class Ear {
  lastAt = 0;
  maxGapMs = 0;
  ended = false;
  readonly #req: ClientRequest;

  constructor(url: string) {
    this.#req = get(url, { agent: false }, (res) => {
      // An error answer (the mount not live yet) is not audio.
      if (res.statusCode !== 200) {
        this.ended = true;
        res.resume();
        return;
      }
      res.on('data', () => {
        const now = Date.now();
        if (this.lastAt > 0) this.maxGapMs = Math.max(this.maxGapMs, now - this.lastAt);
        this.lastAt = now;
      });
      res.on('close', () => (this.ended = true));
    });
    this.#req.on('error', () => (this.ended = true));
  }

  resetGap(): void {
    this.maxGapMs = 0;
  }

  close(): void {
    this.#req.destroy();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function failoverBench(runs = Number(process.env.BENCH_FAILOVER_RUNS ?? 10)): Promise<FailoverRun[]> {
  const c = await Cluster.up({ dir: tempDir('bench-failover'), size: 3, firstAddress: '127.0.9.1', leaseTtl: 3, workers: 2 });
  const out: FailoverRun[] = [];
  try {
    const etcd = c.etcdUrls.join(',');
    const creds = await createMount(etcd, ['create-mount', '/live.ogg']);
    const health = async (i: number) => (await c.nodes[i]!.radiod!.health()).body;
    for (let r = 1; r <= runs; r++) {
      const masterName = String((await health(0)).master);
      const m = c.nodes.findIndex((n) => n.name === masterName);
      const [k, j] = [0, 1, 2].filter((i) => i !== m) as [number, number];
      const url = `icecast://${encodeURIComponent(creds.username)}:${encodeURIComponent(creds.password)}@${c.nodes[k]!.host}:${c.ports.icecast}/live.ogg`;
      const ff = run('ffmpeg', ['-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
        '-c:a', 'libvorbis', '-b:a', '128k', '-content_type', 'application/ogg', '-f', 'ogg', url]);
      const urls = [k, j].map((i) => `http://${c.nodes[i]!.host}:${c.ports.http}/live.ogg`);
      let ears = urls.map((u) => new Ear(u));
      try {
        // Steady audio on both before the kill (a listener that came before the source tries again).
        await waitFor(() => {
          ears = ears.map((e, i) => (e.ended ? new Ear(urls[i]!) : e));
          return ears.every((e) => e.lastAt > 0 && Date.now() - e.lastAt < 1500);
        }, 30_000, 'audio on both surviving nodes', 100);
        await sleep(3000);
        for (const e of ears) e.resetGap();
        const t0 = Date.now();
        await c.crash(m, true);
        await waitFor(async () => {
          const a = (await health(k)).master;
          return typeof a === 'string' && a !== masterName && (await health(j)).master === a;
        }, 10_000, 'a new master', 50);
        const electedMs = Date.now() - t0;
        await waitFor(() => ears.every((e) => e.lastAt > t0 + 500), 30_000, 'audio again', 50).catch(() => undefined);
        await sleep(2000);
        out.push({ run: r, electedMs, longestSilenceMs: Math.max(...ears.map((e) => e.maxGapMs)), sourceKept: alive(ff.pid), listenersKept: ears.every((e) => !e.ended) });
        process.stderr.write(`failover run ${r}: ${JSON.stringify(out[out.length - 1])}\n`);
      } finally {
        for (const e of ears) e.close();
        await ff.kill('SIGKILL');
      }
      await c.startNode(m);
      // The restarted node relays again before the next run.
      await waitFor(async () => (await c.nodes[m]!.radiod!.health()).status === 200, 30_000, 'the restarted node', 200);
      await sleep(4000);
    }
  } finally {
    await c.down();
  }
  return out;
}

/** The middle value (lower of the two middles). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? 0;
}
