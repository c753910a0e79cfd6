/**
 * A source program that reconnects by itself (liquidsoap's output.icecast,
 * 3 s between tries by default), given `stream.DOMAIN` as its server, loses
 * the node it is connected to (kill -9 of that node's radiod and Icecast):
 * it looks the name up again, reaches a live node through the cluster's
 * DNS, and listeners on the surviving nodes keep their connections and
 * hear it again. MP3, whose frames flow steadily: liquidsoap's Ogg Vorbis
 * comes in pages about 1.7 s apart, which would hide the cluster's share
 * of the silence behind the program's own pacing.
 *
 * The system resolver has no port setting, so the cluster's DNS servers
 * listen on port 53 of their own loopback addresses and liquidsoap runs in
 * a mount namespace whose /etc/resolv.conf names them: this needs root, as
 * the fault tests do. Real etcd, radiod, Icecast and liquidsoap.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Cluster } from '../harness/cluster.ts';
import { alive, freePortOn, waitFor } from '../harness/net.ts';
import { createMount, tempDir, type Creds, type Proc } from '../harness/components.ts';
import { liquidsoapSource } from '../harness/clients.ts';
import { Listener } from '../harness/stream.ts';
import { streamAddresses } from '../harness/dig.ts';

const TTL = 3;
const HOSTS = ['127.0.13.1', '127.0.13.2', '127.0.13.3'];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The address liquidsoap (PID `pid`) is connected to on `port`, from the kernel's socket table. */
function connectedTo(pid: number, port: number): string | null {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const peer = line.trim().split(/\s+/)[3] ?? '';
    return peer.slice(0, peer.lastIndexOf(':'));
  }
  return null;
}

/** Why this machine cannot run the test (port 53 and a mount namespace need root), or false. */
function cannot(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (port 53, a mount namespace)';
  try {
    execFileSync('unshare', ['--mount', 'true'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'cannot make a mount namespace here (unshare --mount)';
  }
}

describe('a reconnecting source that finds the cluster through DNS', { skip: cannot() }, () => {
  let c: Cluster;
  let creds: Creds;
  let liq: Proc | null = null;
  const listeners: Listener[] = [];

  before(async () => {
    const pick = (): Promise<number> => freePortOn(HOSTS);
    const ports = { http: await pick(), dns: 53, icecast: await pick(), icecastInternal: await pick(), etcdClient: await pick(), etcdPeer: await pick() };
    c = await Cluster.up({ dir: tempDir('source-dns'), size: 3, firstAddress: HOSTS[0]!, leaseTtl: TTL, workers: 2, ports });
    creds = await createMount(c.etcdUrls.join(','), ['create-mount', '/live.mp3']);
    for (const n of c.nodes) await waitFor(async () => (await streamAddresses({ host: n.host, dnsPort: 53 })).length === 3, 15_000, `${n.name}'s DNS to list every node`);
  });
  after(async () => {
    for (const l of listeners) l.close();
    await liq?.kill('SIGKILL');
    await c?.down();
  });

  it("kill -9 of the node the source is connected to: it reconnects through stream.DOMAIN and is heard again on the other nodes' kept connections", async (t) => {
    const resolv = join(tempDir('resolv'), 'resolv.conf');
    // As a machine whose resolver is the cluster: every node's DNS, one quick try each.
    writeFileSync(resolv, `${HOSTS.map((h) => `nameserver ${h}`).join('\n')}\noptions timeout:1 attempts:1\n`);
    const p = liquidsoapSource({ host: 'stream.radio.test', port: c.ports.icecast, mount: '/live.mp3', user: creds.username, password: creds.password, format: 'mp3', resolvConf: resolv });
    liq = p;
    const via = await waitFor(() => connectedTo(p.pid, c.ports.icecast), 20_000, `liquidsoap connected through stream.radio.test:\n${p.output()}`, 100);
    const k = c.nodes.findIndex((n) => n.host === via);
    assert.ok(k >= 0, `liquidsoap connected to ${via}, a node of the cluster`);
    const role = String((await c.nodes[k]!.radiod!.health()).body.role);
    const others = [0, 1, 2].filter((i) => i !== k);
    const ls = others.map((i) => {
      const l = new Listener(`http://${c.nodes[i]!.host}:${c.ports.http}/live.mp3`, 1 << 16);
      listeners.push(l);
      return l;
    });
    await waitFor(() => ls.every((l) => l.bytes > 16_384), 20_000, 'audio on both other nodes', 100);
    await sleep(2000);
    for (const l of ls) l.resetGap();

    const t0 = Date.now();
    await c.crash(k, true);
    // Its new connection (polled), then the first bytes each listener has after it: nothing of the
    // old stream is still on its way seconds later.
    const now = await waitFor(() => {
      const at = connectedTo(p.pid, c.ports.icecast);
      return at !== null && at !== via ? at : null;
    }, 30_000, `liquidsoap connected again:\n${p.output().slice(-2000)}`, 20);
    const reconnected = Date.now();
    const before = ls.map((l) => l.bytes);
    const heard = await waitFor(() => (ls.every((l, i) => l.bytes > before[i]!) ? Date.now() : null), 20_000, `audio again on both other nodes:\n${p.output().slice(-2000)}`, 20);
    t.diagnostic(`${role} holding the source killed -> liquidsoap connected again through stream.radio.test (to ${now}) after ${reconnected - t0} ms -> heard on both other nodes ${heard - reconnected} ms later (${heard - t0} ms after the kill)`);
    await sleep(2000);
    t.diagnostic(`longest silence per listener: ${ls.map((l) => `${l.maxGapMs} ms`).join(', ')}`);
    assert.ok(alive(p.pid), 'liquidsoap still runs');
    for (const l of ls) assert.equal(l.ended, false, 'a listener on a surviving node lost its connection');
  });
});
