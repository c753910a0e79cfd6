/**
 * Hostile state and hostile neighbours, with real etcd, radiod, icecast2,
 * liquidsoap and ffmpeg: a node's own Icecast lets in only the cluster's
 * addresses while the cluster keeps streaming; a second radiod with a name
 * in use ends with the holder's addresses, while a name left by a radiod
 * that died is taken once its lease runs out; node and status records
 * written straight into etcd with code in their addresses and ports are
 * refused (logged once) and never reach a liquidsoap script. Nodes on
 * 127.0.21.1-4, an outsider on 127.0.21.99.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { alive, waitFor } from '../harness/net.ts';
import { nodeKey, statusKey } from '../src/state/keys.ts';
import { assertServes, underAttack } from '../harness/attack.ts';
import { createMount, pidFrom, startEtcd, startRadiod, tempDir, type Creds, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { Listener, ffmpegSource, icecastUrl, oggPages } from '../harness/stream.ts';

const TTL = 2;
const OUTSIDER = '127.0.21.99';

/** Established connections from `from` to local `port`, on the server's side (accepted or waiting in the accept queue). */
function heldFrom(from: string, port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} and dst ${from} )`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

/** What a connection from `from` to host:port gets back for a request within `ms`: the bytes, and whether the server closed it. */
function exchange(from: string, host: string, port: number, ms = 2000): Promise<{ bytes: number; closed: boolean; head: string }> {
  return new Promise((resolve) => {
    const s = connect({ host, port, localAddress: from });
    let got = Buffer.alloc(0);
    let closed = false;
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ bytes: got.length, closed, head: got.subarray(0, 200).toString('latin1') });
    };
    const timer = setTimeout(done, ms);
    s.on('connect', () => s.write('GET /status-json.xsl HTTP/1.0\r\n\r\n'));
    s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
    s.on('error', () => (closed = true));
    s.on('close', () => {
      closed = true;
      done();
    });
  });
}

describe('hostile state and hostile neighbours', () => {
  let etcd: Etcd;
  let client: Etcd3;
  let h1: Radiod;
  let h2: Radiod;
  const nodes: Radiod[] = [];
  const procs: Proc[] = [];
  const listeners: Listener[] = [];
  let live: Creds;

  before(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.url });
    h1 = await startRadiod({ name: 'h1', host: '127.0.21.1', etcd: etcd.url, leaseTtl: TTL });
    nodes.push(h1);
    await waitFor(async () => (await h1.health()).body.icecast === 'ready', 15_000, 'h1 master with Icecast');
    h2 = await startRadiod({ name: 'h2', host: '127.0.21.2', etcd: etcd.url, leaseTtl: TTL });
    nodes.push(h2);
    await waitFor(async () => (await h2.health()).body.icecast === 'ready', 15_000, 'h2 Icecast ready');
  });
  after(async () => {
    for (const l of listeners) l.close();
    for (const p of procs) await p.kill('SIGKILL');
    for (const n of nodes) await n.stop();
    client?.close();
    await etcd?.stop();
  });

  /** Listens on `n` until Ogg pages arrive. */
  const hear = (n: Radiod, path: string, timeoutMs = 30_000): Promise<Listener> =>
    waitFor(async () => {
      const l = new Listener(`http://${n.host}:${n.icecastPort}${path}`);
      listeners.push(l);
      await new Promise((r) => setTimeout(r, 1500));
      if (l.status === 200 && oggPages(l.data()) >= 3) return l;
      l.close();
      return null;
    }, timeoutMs, `Ogg pages from ${n.name}${path}`, 100);

  it("lets only the cluster's addresses into a node's own Icecast; the cluster still streams node to node", async (t) => {
    live = await createMount(etcd.url, ['create-mount', '/live.ogg']);
    await waitFor(async () => {
      const p = ffmpegSource(icecastUrl(live.username, live.password, h1.host, h1.icecastPort, live.path));
      procs.push(p);
      await new Promise((r) => setTimeout(r, 1500));
      return alive(p.pid) ? p : null;
    }, 20_000, 'a source on h1', 100);
    await hear(h2, '/live.ogg');

    const allowFile = join(h1.dataDir, 'icecast', 'allow-ip');
    await waitFor(() => existsSync(allowFile) && /^127\.0\.21\.2$/m.test(readFileSync(allowFile, 'utf8')), 10_000, "h2's address in h1's allow-list");
    assert.doesNotMatch(readFileSync(allowFile, 'utf8'), /127\.0\.21\.99/);
    // Icecast reads a changed list at a connection at most every 10 s.
    const member = await waitFor(async () => {
      const r = await exchange('127.0.21.2', h1.host, h1.icecastInternalPort);
      return r.bytes > 0 ? r : null;
    }, 15_000, "h1's Icecast to answer a node's address", 500);
    assert.match(member.head, /^HTTP\/1\.[01] /);
    const outsider = await exchange(OUTSIDER, h1.host, h1.icecastInternalPort);
    assert.deepEqual([outsider.bytes, outsider.closed], [0, true], 'an outside address gets nothing and is closed');
    const outsider2 = await exchange(OUTSIDER, h2.host, h2.icecastInternalPort);
    assert.deepEqual([outsider2.bytes, outsider2.closed], [0, true], "the same on a relay node's Icecast");
    t.diagnostic(`allowed: ${member.head.split('\r\n')[0]}; outsider: ${outsider.bytes} bytes, closed`);
  });

  it('closes a flood from outside the cluster at once and keeps relaying', async () => {
    const N = 200;
    await underAttack("half-sent requests to the master's internal Icecast from outside the cluster", h1, async () => {
      const sockets: Socket[] = [];
      // In bursts of 20, so that the flood is not just the kernel dropping SYNs past Icecast's listen backlog of 5.
      for (let i = 0; i < N; i += 20) {
        for (let j = 0; j < 20; j++) {
          const s = connect({ host: h1.host, port: h1.icecastInternalPort, localAddress: OUTSIDER });
          // Half a request head, as a slow client sends it, then nothing: Icecast waits 15 s (header-timeout) for the rest.
          s.on('connect', () => s.write('GET /live.ogg HTTP/1.0\r\nUser-Agent: x'));
          s.on('error', () => undefined);
          sockets.push(s);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 2000));
      // Connections Icecast has accepted and keeps, as the kernel sees them on the server's side.
      const held = heldFrom(OUTSIDER, h1.icecastInternalPort);
      const t0 = Date.now();
      const inside = await exchange('127.0.0.1', h1.host, h1.icecastInternalPort, 5000);
      const answerMs = Date.now() - t0;
      for (const s of sockets) s.destroy();
      const figure = `${N} half-sent requests from ${OUTSIDER}: ${held} held by Icecast 2 s later; a cluster address answered in ${answerMs} ms`;
      console.log(`# ${figure}`);
      assert.ok(held <= 6, figure);
      assert.ok(inside.bytes > 0, 'an address of the cluster is answered during the flood');
      return figure;
    }, { mount: '/live.ogg' });
    await hear(h2, '/live.ogg');
  });

  it('ends a second radiod with a name in use, naming the holder, and leaves the holder alone', async () => {
    const dup = await startRadiod({ name: 'h2', host: '127.0.21.3', etcd: etcd.url, leaseTtl: TTL, readyMs: 0 });
    nodes.push(dup);
    const exit = await Promise.race([dup.proc.exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
    assert.ok(exit !== null, 'the second radiod ends by itself');
    assert.notEqual(exit.code, 0, 'with a failure status');
    assert.match(dup.proc.output(), /node name h2 is taken by another live node \(addresses 127\.0\.21\.2,/);
    const rec = JSON.parse((await client.get(nodeKey('h2')).string())!) as { addresses: string[] };
    assert.deepEqual(rec.addresses, ['127.0.21.2'], "the holder's record is untouched");
    const masters = await client.getAll().prefix('/radioai/v1/election/master/').strings();
    assert.deepEqual(Object.values(masters).sort(), ['h1', 'h2'], 'the second radiod never campaigned');
    assert.equal((await h2.health()).status, 200);
  });

  it('takes a name over from a radiod that died, once its lease runs out', async (t) => {
    // A record like the one a radiod leaves that died on a machine still answering on its ports
    // (the other nodes' probes find it alive, so only its lease can end it): on a lease nobody keeps alive.
    const answering = createServer((s) => s.destroy());
    await new Promise<void>((r) => answering.listen(0, '127.0.21.9', r));
    t.after(() => answering.close());
    const port = (answering.address() as AddressInfo).port;
    const lease = client.lease(3, { autoKeepAlive: false });
    await lease.put(nodeKey('h3')).value(JSON.stringify({
      name: 'h3', addresses: ['127.0.21.9'], httpPort: port, dnsPort: 1, icecastPort: port, icecastInternalPort: port, proxy: true, maxListeners: 0, bandwidthLimit: 0, version: '', startedAt: '',
    }));
    const t0 = Date.now();
    const h3 = await startRadiod({ name: 'h3', host: '127.0.21.3', etcd: etcd.url, leaseTtl: TTL });
    nodes.push(h3);
    await waitFor(async () => {
      const v = await client.get(nodeKey('h3')).string();
      return v !== null && (JSON.parse(v) as { addresses: string[] }).addresses[0] === '127.0.21.3';
    }, 10_000, 'h3 registered with its own addresses');
    t.diagnostic(`registered ${Date.now() - t0} ms after start, the old lease having had 3 s left`);
    assert.match(h3.proc.output(), /node name h3 is registered on another lease \(addresses 127\.0\.21\.9,.*waiting up to \d+ s/);
    assert.ok(alive(h3.proc.pid));
    await h3.stop();
  });

  it('refuses node and status records with code in them: logged once, never in a liquidsoap script', async (t) => {
    await createMount(etcd.url, ['create-transcoding-mount', '/t.ogg', '--source', '/live.ogg', '--codec', 'vorbis', '--bitrate', '64']);
    const pidFiles = nodes.slice(0, 2).map((n) => join(n.dataDir, 'liquidsoap', 't.ogg.pid'));
    const running = (): number[] => pidFiles.map(pidFrom).filter((p): p is number => p !== null && alive(p));
    await waitFor(() => running().length === 1, 20_000, 'a liquidsoap for /t.ogg');

    const dir = tempDir('marker');
    const marker = join(dir, 'address-ran');
    const marker2 = join(dir, 'port-ran');
    // The master's own record, as anyone with write access to etcd could replace it.
    const hostile = {
      name: 'h1', addresses: [`#{process.read('touch ${marker}; echo')}`], httpPort: h1.httpPort, dnsPort: h1.dnsPort, icecastPort: h1.icecastPort,
      icecastInternalPort: `int_of_string(process.read("touch ${marker2}; echo ${h1.icecastInternalPort}"))`,
      proxy: true, maxListeners: 0, bandwidthLimit: 0, version: '', startedAt: '',
    };
    await client.put(nodeKey('h1')).value(JSON.stringify(hostile));
    await client.put(statusKey('ghost')).value(JSON.stringify({ listeners: 'many', bandwidth: 1, icecastReady: true, mounts: {} }));
    // Several ticks, watch events and a liquidsoap start time.
    await new Promise((r) => setTimeout(r, 6000));
    await client.put(statusKey('ghost')).value(JSON.stringify({ listeners: 'many', bandwidth: 1, icecastReady: true, mounts: {} }));
    await new Promise((r) => setTimeout(r, 1000));

    assert.ok(!existsSync(marker) && !existsSync(marker2), 'no command ran from a node record');
    for (const n of nodes.slice(0, 2)) {
      const lines = n.proc.output().split('\n');
      const nodeLines = lines.filter((l) => l.includes('ignoring invalid record /radioai/v1/nodes/h1:'));
      assert.equal(nodeLines.length, 1, `${n.name} says it once: ${nodeLines.join(' | ')}`);
      assert.match(nodeLines[0]!, /is not an IP address/);
      assert.equal(lines.filter((l) => l.includes('ignoring invalid record /radioai/v1/status/ghost:')).length, 1, `${n.name}: the status record, once`);
      assert.ok(!lines.some((l) => l.includes('process.read') && !l.includes('ignoring invalid record')), `${n.name} used the value nowhere else`);
      await assertServes(n);
    }
    const liq = nodes.slice(0, 2).map((n) => join(n.dataDir, 'liquidsoap', 't.ogg.liq')).filter(existsSync).map((f) => readFileSync(f, 'utf8'));
    assert.ok(liq.every((s) => !s.includes('process.read')), 'no script holds the value');
    t.diagnostic(`liquidsoap for /t.ogg while the master's record is refused: ${running().length} running`);
  });
});
