/**
 * Faults on a three-node cluster on one machine (harness/cluster.ts): each
 * node has its own etcd member, Icecast and radiod on 127.0.7.1-3, and
 * reaches etcd through TCP proxies the test can cut. A source and listeners
 * run throughout. The measured figures are printed as diagnostics; 
 * docs/failure-behaviour.md quotes them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { get } from 'node:http';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Cluster } from '../harness/cluster.ts';
import { alive, httpGet, waitFor } from '../harness/net.ts';
import { join } from 'node:path';
import { createMount, pidFrom, radioctl, tempDir, type Creds } from '../harness/components.ts';
import { streamAddresses } from '../harness/dig.ts';
import { KeepSource, Listener, ffmpegSource, icecastUrl, mp3Frames, oggPages } from '../harness/stream.ts';

const TTL = 3;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const exec = promisify(execFile);

/** The status and Location of a listener request, without reading the stream. */
function answerOf(url: string): Promise<{ status: number; location: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: 5000 }, (res) => {
      resolve({ status: res.statusCode ?? 0, location: String(res.headers.location ?? '') });
      req.destroy();
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

describe('faults on a three-node cluster', () => {
  let c: Cluster;
  let creds: Creds;
  let source: KeepSource;
  /** The node whose Icecast-compatible door the source client (re)connects to. */
  let sourceVia = 0;
  const listeners: Listener[] = [];
  const host = (i: number): string => c.nodes[i]!.host;
  const node = (i: number) => c.nodes[i]!.radiod!;
  const etcd = (): string => c.etcdUrls.join(',');
  const listen = (i: number): Listener => {
    const l = new Listener(`http://${host(i)}:${c.ports.http}/live.ogg`, 1 << 16);
    listeners.push(l);
    return l;
  };
  /** Waits until `l` receives data newer than `since`. */
  const flowing = (l: Listener, since = Date.now(), ms = 15_000): Promise<boolean> =>
    waitFor(() => !l.ended && l.lastAt > since, ms, 'a listener to receive data');
  /** A new listener on node i that hears Ogg pages within 1.5 s; retried until `ms`. */
  const hear = (i: number, ms = 20_000): Promise<Listener> =>
    waitFor(async () => {
      const l = listen(i);
      await sleep(1500);
      if (l.status === 200 && oggPages(l.data()) >= 3) return l;
      l.close();
      return null;
    }, ms, `audio from node${i + 1}`, 100);
  /**
   * Every node alive and /live.ogg on the master's Icecast and on the
   * relay's (the standby relays nothing), as etcd says, under a master
   * that has not changed for LEASE_TTL + 2 s (after an etcd outage a
   * campaign lease can expire late and move the master once); then a second
   * for every node's watch to have it too.
   */
  const settled = async (): Promise<void> => {
    let since = { master: '', at: Date.now() };
    await waitFor(async () => {
      const st = JSON.parse((await radioctl(etcd(), ['--json', 'status'])).stdout) as { master: string; nodes: { alive: boolean }[]; mounts: { path: string; ready: string[] }[] };
      if (st.master !== since.master) since = { master: st.master, at: Date.now() };
      return st.nodes.filter((n) => n.alive).length === 3 && st.mounts.find((m) => m.path === '/live.ogg')?.ready.length === 2
        && Date.now() - since.at >= (TTL + 2) * 1000;
    }, 60_000, 'every node alive and ready for /live.ogg under a steady master', 250);
    await sleep(1000);
  };
  const serving = async (path: string, want: number): Promise<boolean> => {
    const codes = await Promise.all(c.nodes.map(async (n) => (await httpGet(`http://${n.host}:${c.ports.http}${path}.m3u`)).status));
    return codes.every((s) => s === want);
  };

  before(async () => {
    c = await Cluster.up({ dir: tempDir('cluster'), size: 3, firstAddress: '127.0.7.1', leaseTtl: TTL, workers: 2, cuttable: true });
    creds = await createMount(etcd(), ['create-mount', '/live.ogg']);
    await waitFor(() => serving('/live.ogg', 200), 10_000, 'the mount on every node');
    source = new KeepSource(() => ffmpegSource(icecastUrl(creds.username, creds.password, host(sourceVia), c.ports.icecast, '/live.ogg')));
    for (const i of [0, 1, 2]) (await hear(i, 30_000)).close();
  });
  after(async () => {
    for (const l of listeners) l.close();
    await source?.stop();
    await c?.down();
  });

  it('propagates create-mount and delete-mount to every node (20 mounts)', async (t) => {
    const create: number[] = [];
    const createAfterWrite: number[] = [];
    const remove: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await createMount(etcd(), ['create-mount', `/prop-${i}.ogg`]);
      const t1 = performance.now();
      await waitFor(() => serving(`/prop-${i}.ogg`, 200), 10_000, `/prop-${i}.ogg on every node`, 5);
      const t2 = performance.now();
      create.push(t2 - t0);
      createAfterWrite.push(t2 - t1);
    }
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      const res = await radioctl(etcd(), ['delete-mount', `/prop-${i}.ogg`]);
      assert.equal(res.code, 0, res.stderr);
      await waitFor(() => serving(`/prop-${i}.ogg`, 404), 10_000, `/prop-${i}.ogg refused on every node`, 5);
      remove.push(performance.now() - t0);
    }
    const f = (xs: number[]): string => `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms`;
    t.diagnostic(`create-mount (radioctl started) -> every node serves the mount: ${f(create)}`);
    t.diagnostic(`create-mount (written to etcd) -> every node serves the mount: ${f(createAfterWrite)}`);
    t.diagnostic(`delete-mount (radioctl started) -> every node refuses the mount: ${f(remove)}`);
  });

  it('kill -9 of a relay radiod: it leaves DNS and the choices within LEASE_TTL + 1 s, others are untouched, and a restart brings it back', async (t) => {
    const others = [listen(0), listen(1)];
    for (const l of others) await flowing(l);
    for (const l of others) l.resetGap();
    const t0 = Date.now();
    await c.crash(2);
    await waitFor(async () => {
      for (const i of [0, 1]) {
        if ((await streamAddresses(node(i))).includes(host(2))) return false;
        if ((await node(i).health()).body.nodes !== 2) return false;
      }
      return true;
    }, (TTL + 1) * 1000, 'node3 to leave DNS and the balancing choices of node1 and node2', 50);
    t.diagnostic(`relay radiod killed -> out of DNS and choices on both other nodes: ${Date.now() - t0} ms`);
    await sleep(1000);
    for (const l of others) {
      assert.equal(l.ended, false, 'a listener on another node lost its connection');
      assert.ok(l.maxGapMs < 2000, `a listener on another node paused ${l.maxGapMs} ms`);
      l.close();
    }
    t.diagnostic(`longest pause for listeners on the other nodes: ${Math.max(...others.map((l) => l.maxGapMs))} ms`);

    const t1 = Date.now();
    await c.startNode(2);
    await waitFor(async () => (await streamAddresses(node(0))).includes(host(2)), 15_000, 'node3 back in DNS');
    (await hear(2)).close();
    t.diagnostic(`relay restarted (same data dir, orphaned Icecast ended) -> in DNS and serving audio: ${Date.now() - t1} ms`);
  });

  it("kill -9 of the master's radiod and Icecast: a new master within LEASE_TTL + 2 s, the source comes back through another door, listeners keep their connection", async (t) => {
    assert.equal((await node(0).health()).body.role, 'master');
    const ls = [listen(1), listen(2)];
    for (const l of ls) await flowing(l);
    for (const l of ls) l.resetGap();
    // The source client's next connection goes to node2's door, which carries it to whichever node is master.
    sourceVia = 1;
    const t0 = Date.now();
    await c.crash(0, true);
    const master = await waitFor(async () => {
      const m = (await node(1).health()).body.master;
      return typeof m === 'string' && m !== 'node1' && (await node(2).health()).body.master === m ? m : null;
    }, (TTL + 2) * 1000, 'node2 and node3 to agree on a new master', 50);
    const elected = Date.now() - t0;
    t.diagnostic(`master killed -> ${master} elected, seen by both survivors: ${elected} ms`);
    const before = ls.map((l) => l.bytes);
    await waitFor(() => ls.every((l, i) => l.bytes - before[i]! > 32_768), 30_000, 'audio again on both surviving nodes', 50).catch((err: Error) => {
      throw new Error(`${err.message}\nnode2: ${node(1).proc.output().slice(-3000)}\nnode3: ${node(2).proc.output().slice(-3000)}`);
    });
    t.diagnostic(`master killed -> both surviving listeners hear the reconnected source: ${Date.now() - t0} ms`);
    for (const l of ls) assert.equal(l.ended, false, 'a listener on a surviving node lost its connection');
    t.diagnostic(`listener gap (longest silence on a kept connection): ${Math.max(...ls.map((l) => l.maxGapMs))} ms`);
    const st = JSON.parse((await radioctl(etcd(), ['--json', 'status'])).stdout) as { master: string; mounts: { path: string; source: boolean }[] };
    assert.equal(st.master, master);
    assert.equal(st.mounts.find((m) => m.path === '/live.ogg')?.source, true);
    for (const l of ls) l.close();

    await c.startNode(0);
    (await hear(0)).close();
    assert.equal((await node(0).health()).body.role, 'relay', 'the old master rejoins as a relay');
  });

  // A source program that never reconnects (ffmpeg) on a surviving node's door.
  for (const via of ['ICECAST_PORT', 'HTTP_PORT'] as const) {
    it(`kill -9 of the master while a source that never reconnects streams through a surviving node's ${via}: the source stays connected and is heard again`, async (t) => {
      await settled();
      const masterName = String((await node(0).health()).body.master);
      const m = c.nodes.findIndex((n) => n.name === masterName);
      const [k, j] = [0, 1, 2].filter((i) => i !== m) as [number, number];
      // The steady source goes; ffmpeg alone, through node k's door, takes its place.
      await source.stop();
      const ff = ffmpegSource(icecastUrl(creds.username, creds.password, host(k), via === 'HTTP_PORT' ? c.ports.http : c.ports.icecast, '/live.ogg'));
      try {
        const ls = [listen(k), listen(j)];
        for (const l of ls) {
          await flowing(l, Date.now(), 30_000).catch((err: Error) => {
            throw new Error(`${err.message}\nsource: ${ff.output()}\nnode${k + 1}: ${node(k).proc.output().slice(-2500)}\nnode${m + 1}: ${node(m).proc.output().slice(-2500)}`);
          });
        }
        for (const l of ls) l.resetGap();
        const t0 = Date.now();
        await c.crash(m, true);
        const master = await waitFor(async () => {
          const x = (await node(k).health()).body.master;
          return typeof x === 'string' && x !== masterName && (await node(j).health()).body.master === x ? x : null;
        }, (TTL + 2) * 1000, 'the survivors to agree on a new master', 50);
        t.diagnostic(`${via}: master killed -> ${master} elected, seen by both survivors: ${Date.now() - t0} ms`);
        const before = ls.map((l) => l.bytes);
        await waitFor(() => ls.every((l, i) => l.bytes - before[i]! > 32_768), 30_000, 'audio again on both surviving nodes', 50);
        t.diagnostic(`${via}: master killed -> both surviving listeners hear the source again: ${Date.now() - t0} ms`);
        const carried = [...node(k).proc.output().matchAll(/source of \/live\.ogg carried on to (\S+) after (\d+) ms/g)].at(-1);
        t.diagnostic(`${via}: the source's door carried it on to ${carried?.[1] ?? '?'} after ${carried?.[2] ?? '?'} ms without an upstream`);
        await sleep(Math.max(0, t0 + 20_000 - Date.now()));
        assert.ok(alive(ff.pid), `the source program is still connected 20 s after the kill:\n${ff.output()}`);
        const heard = ls.map((l) => l.lastAt);
        await sleep(1500);
        for (const [i, l] of ls.entries()) {
          assert.equal(l.ended, false, 'a listener on a surviving node lost its connection');
          assert.ok(l.lastAt > heard[i]!, 'and still hears the source');
        }
        t.diagnostic(`${via}: source kept: yes; longest silence per listener: ${ls.map((l) => `${l.maxGapMs} ms`).join(', ')}; every listener connection kept: yes`);
        for (const l of ls) l.close();
      } finally {
        await ff.kill('SIGKILL');
        sourceVia = k;
        source = new KeepSource(() => ffmpegSource(icecastUrl(creds.username, creds.password, host(sourceVia), c.ports.icecast, '/live.ogg')));
        await c.startNode(m);
        (await hear(m, 30_000)).close();
      }
    });
  }

  it('kill -9 of one etcd member changes nothing a user sees', async (t) => {
    const ls = [listen(0), listen(1), listen(2)];
    for (const l of ls) await flowing(l);
    for (const l of ls) l.resetGap();
    // The leader is the hardest member to lose: the others must elect a new one.
    const { stdout } = await exec('etcdctl', ['--endpoints', etcd(), 'endpoint', 'status', '-w', 'json']);
    const statuses = JSON.parse(stdout) as { Endpoint: string; Status: { leader: string | number; header: { member_id: string | number } } }[];
    const leaderUrl = statuses.find((s) => String(s.Status.leader) === String(s.Status.header.member_id))!.Endpoint;
    const victim = c.nodes.find((n) => n.member?.url === leaderUrl)!;
    await victim.member!.kill();
    const until = Date.now() + (TTL + 2) * 1000;
    while (Date.now() < until) {
      for (const i of [0, 1, 2]) {
        const h = await node(i).health();
        assert.equal(h.status, 200, `node${i + 1} health during the fault: ${JSON.stringify(h.body)}`);
        assert.equal(h.body.nodes, 3);
        assert.equal((await streamAddresses(node(i))).length, 3);
      }
      await sleep(200);
    }
    await createMount(etcd(), ['create-mount', '/member-down.ogg']);
    await waitFor(() => serving('/member-down.ogg', 200), 10_000, 'a mount created while a member is down');
    for (const l of ls) {
      assert.equal(l.ended, false);
      assert.ok(l.maxGapMs < 2000, `a listener paused ${l.maxGapMs} ms`);
      l.close();
    }
    t.diagnostic(`etcd leader ${victim.name} killed: nodes stayed healthy, in DNS, listeners' longest pause ${Math.max(...ls.map((l) => l.maxGapMs))} ms`);
    await victim.member!.start();
    await victim.member!.healthy(20_000);
  });

  it('two of three etcd members down: every node keeps serving and answering DNS, and the cluster recovers by itself', async (t) => {
    const ls = [listen(0), listen(1), listen(2)];
    for (const l of ls) await flowing(l);
    const down = [c.nodes[1]!, c.nodes[2]!];
    const pids = c.nodes.map((n) => n.radiod!.proc.pid);
    const master = String((await node(0).health()).body.master);
    for (const n of down) await n.member!.kill();
    // Longer than two lease TTLs: leases cannot expire without a quorum, so nobody may drop out.
    const until = Date.now() + (2 * TTL + 2) * 1000;
    while (Date.now() < until) {
      for (const i of [0, 1, 2]) {
        assert.ok(alive(pids[i]!), `node${i + 1}'s radiod died`);
        assert.equal((await node(i).health()).status, 200, `node${i + 1} left service`);
        assert.equal((await streamAddresses(node(i))).length, 3, `node${i + 1}'s DNS lost a node`);
      }
      for (const l of ls) assert.ok(!l.ended && Date.now() - l.lastAt < 2000, 'a listener stopped receiving');
      await sleep(500);
    }
    const cut = (await node(0).health()).body;
    assert.equal(cut.etcd, 'unreachable', `etcd really was without quorum (node1 says ${JSON.stringify(cut)} at ${new Date().toISOString()})`);
    const t0 = Date.now();
    for (const n of down) await n.member!.start();
    await waitFor(async () => {
      for (const i of [0, 1, 2]) if ((await node(i).health()).body.etcd !== 'connected') return false;
      return true;
    }, 30_000, 'every node connected to etcd again');
    t.diagnostic(`quorum back -> every node connected: ${Date.now() - t0} ms`);
    // The outage outlasted the client's patience with its leases (twice the TTL): the master must
    // still keep its place, through the time the old candidate keys would have taken to expire.
    const keepUntil = Date.now() + (2 * TTL + 1) * 1000;
    while (Date.now() < keepUntil) {
      for (const i of [0, 1, 2]) assert.equal((await node(i).health()).body.master, master, `node${i + 1} names another master after the quorum returned`);
      await sleep(250);
    }
    await createMount(etcd(), ['create-mount', '/after-quorum.ogg']);
    await waitFor(() => serving('/after-quorum.ogg', 200), 10_000, 'a mount created after the quorum returned');
    t.diagnostic(`quorum back -> a new mount served everywhere: ${Date.now() - t0} ms`);
    await waitFor(async () => {
      const st = JSON.parse((await radioctl(etcd(), ['--json', 'status'])).stdout) as { nodes: { alive: boolean }[] };
      return st.nodes.filter((n) => n.alive).length === 3;
    }, 20_000, 'all three nodes registered again');
    t.diagnostic(`quorum back -> all three nodes registered: ${Date.now() - t0} ms`);
    for (const l of ls) l.close();
    await settled();
  });

  it('a node cut off from etcd takes itself out of service and returns when the link does', async (t) => {
    await settled();
    // A relay: the cut-off master's step-down is another story (docs/failure-behaviour.md).
    const master = String((await node(0).health()).body.master);
    const k = c.nodes.findIndex((n) => n.name !== master && n.index !== 0);
    const others = [0, 1, 2].filter((i) => i !== k);
    const mine = listen(k);
    await flowing(mine);
    const t0 = Date.now();
    await c.cut(k);
    await waitFor(async () => (await node(k).health()).status === 503, (TTL + 5) * 1000, `node${k + 1} to leave service`);
    t.diagnostic(`link cut -> node${k + 1} out of service: ${Date.now() - t0} ms`);
    assert.equal((await node(k).health()).body.status, 'out-of-service');
    await waitFor(async () => !(await streamAddresses(node(others[0]!))).includes(host(k)) && !(await streamAddresses(node(others[1]!))).includes(host(k)), (TTL + 2) * 1000, `node${k + 1} to leave the others' DNS`);
    assert.ok(!(await streamAddresses(node(k))).includes(host(k)), `node${k + 1} still offers itself in its own DNS`);
    const a = await answerOf(`http://${host(k)}:${c.ports.http}/live.ogg`);
    assert.equal(a.status, 302, `a new listener at node${k + 1} is sent elsewhere`);
    assert.ok(!a.location.includes(host(k)), a.location);
    // A listener already on the node keeps its stream: out of service only turns new listeners away.
    assert.equal(mine.ended, false, `the listener on node${k + 1} lost its connection`);
    try {
      await flowing(mine, Date.now(), 3000);
    } catch (err) {
      throw new Error(`${(err as Error).message}; node${k + 1}'s log:\n${node(k).proc.output().slice(-2500)}`);
    }
    mine.close();

    const t1 = Date.now();
    await c.restore(k);
    await waitFor(async () => (await node(k).health()).status === 200, 20_000, `node${k + 1} back in service`);
    await waitFor(async () => (await streamAddresses(node(others[0]!))).includes(host(k)), 10_000, `node${k + 1} back in DNS`);
    (await hear(k)).close();
    t.diagnostic(`link restored -> node${k + 1} in service, in DNS and serving: ${Date.now() - t1} ms`);
  });

  it('a node cut off from etcd stops its transcoder before another node starts one', async (t) => {
    await settled();
    await createMount(etcd(), ['create-transcoding-mount', '/low.mp3', '--source', '/live.ogg', '--bitrate', '64']);
    const running = (i: number): number | null => {
      const p = pidFrom(join(c.nodes[i]!.dataDir, 'liquidsoap', 'low.mp3.pid'));
      return p !== null && alive(p) ? p : null;
    };
    // The node's index in an array: waitFor takes a bare 0 for "not yet".
    const k = (await waitFor(() => {
      const r = [0, 1, 2].filter((i) => running(i) !== null);
      return r.length === 1 ? r : null;
    }, 20_000, 'one liquidsoap for /low.mp3').catch((err: Error) => {
      const pids = [0, 1, 2].map((i) => pidFrom(join(c.nodes[i]!.dataDir, 'liquidsoap', 'low.mp3.pid')));
      throw new Error(`${err.message} (PID files: ${JSON.stringify(pids)}, alive: ${JSON.stringify(pids.map((p) => p !== null && alive(p)))})\n${[0, 1, 2].map((i) => `node${i + 1}:\n${node(i).proc.output().split('\n').filter((l) => !l.includes('fserve')).slice(-25).join('\n')}`).join('\n')}`);
    }))[0]!;
    const pid = running(k)!;
    const others = [0, 1, 2].filter((i) => i !== k);
    const t0 = performance.now();
    await c.cut(k);
    let stopped = 0;
    let started = 0;
    let startedOn = -1;
    await waitFor(() => {
      const now = performance.now() - t0;
      if (stopped === 0 && !alive(pid)) stopped = now;
      for (const i of others) {
        if (started === 0 && running(i) !== null) {
          started = now;
          startedOn = i;
        }
      }
      return stopped > 0 && started > 0;
    }, (TTL + 8) * 1000, 'the cut-off liquidsoap to stop and another to start', 20);
    t.diagnostic(`link cut -> node${k + 1}'s liquidsoap stopped after ${stopped.toFixed(0)} ms; node${startedOn + 1}'s started after ${started.toFixed(0)} ms: ${(started - stopped).toFixed(0)} ms without one`);
    assert.ok(stopped < started, `node${k + 1}'s liquidsoap still ran when node${startedOn + 1}'s started`);
    await waitFor(async () => {
      const l = new Listener(`http://${host(startedOn)}:${c.ports.http}/low.mp3`);
      await sleep(1500);
      l.close();
      return mp3Frames(l.data()).length >= 10;
    }, 30_000, 'MP3 from the new transcoder', 100);
    t.diagnostic(`link cut -> MP3 from node${startedOn + 1}'s transcoder after ${(performance.now() - t0).toFixed(0)} ms`);
    await c.restore(k);
    await waitFor(async () => (await node(k).health()).status === 200, 20_000, `node${k + 1} back in service`);
    assert.equal((await radioctl(etcd(), ['delete-mount', '/low.mp3'])).code, 0);
  });
});
