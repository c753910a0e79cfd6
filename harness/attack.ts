/**
 * What every attack test asserts about the node it attacked: its resident
 * memory grew by less than a bound, no worker thread died, and an ordinary
 * client on another connection is still served (DNS over UDP and TCP,
 * /health, and a listener when a mount is given).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dig } from './dig.ts';
import { httpGet, type Radiod } from './components.ts';

/** Resident set size of a process, bytes (from /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Lines radiod logged about a worker thread ending (a crash or an exit the supervisor saw). */
export function workerDeaths(node: Radiod): string[] {
  return node.proc.output().split('\n').filter((l) => /worker \d+ (exited|failed)/.test(l));
}

/** Bytes a listener receives from `url` within `ms`. */
export async function listenBytes(url: string, ms = 1500): Promise<number> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ms);
  let n = 0;
  try {
    const res = await fetch(url, { signal: ctl.signal });
    for await (const chunk of res.body ?? []) n += (chunk as Uint8Array).length;
  } catch {
    // Aborted at the deadline: what arrived is the answer.
  } finally {
    clearTimeout(timer);
  }
  return n;
}

/** Asserts that an ordinary client is served by `node` now; `mount` adds a listener that must receive audio. */
export async function assertServes(node: Radiod, o: { domain?: string; mount?: string } = {}): Promise<void> {
  const domain = o.domain ?? 'radio.test';
  const udp = await dig(node, `stream.${domain}`, 'A');
  assert.equal(udp.status, 'NOERROR', `DNS over UDP answers: ${udp.raw}`);
  const tcp = await dig(node, `stream.${domain}`, 'A', '+tcp');
  assert.equal(tcp.status, 'NOERROR', `DNS over TCP answers: ${tcp.raw}`);
  const h = await httpGet(`http://${node.host}:${node.httpPort}/health`);
  assert.equal(h.status, 200, `/health answers 200: ${h.body}`);
  if (o.mount) {
    const n = await listenBytes(`http://${node.host}:${node.icecastPort}${o.mount}`);
    assert.ok(n > 1000, `a listener of ${o.mount} receives audio (got ${n} bytes)`);
  }
}

/**
 * Runs `attack` against `node` and checks the node afterwards: RSS growth under `maxGrowth`
 * (64 MiB unless given), no worker death, ordinary clients served. Prints and returns the figure.
 */
export async function underAttack(name: string, node: Radiod, attack: () => Promise<string>, o: { mount?: string; maxGrowth?: number } = {}): Promise<{ growth: number; figure: string }> {
  const before = rssBytes(node.proc.pid);
  const deathsBefore = workerDeaths(node).length;
  const figure = await attack();
  await assertServes(node, { mount: o.mount });
  const growth = rssBytes(node.proc.pid) - before;
  const line = `${name}: ${figure}; radiod RSS grew ${(growth / 1048576).toFixed(1)} MiB`;
  console.log(`# attack ${line}`);
  assert.ok(growth < (o.maxGrowth ?? 64 * 1048576), line);
  assert.deepEqual(workerDeaths(node).slice(deathsBefore), [], 'no worker thread died');
  return { growth, figure: line };
}
