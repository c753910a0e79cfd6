/**
 * radiod as a process: embedded etcd, presence, master election, worker
 * supervision, losing etcd, and a clean stop. Real etcd and real radiod
 * processes on 127.0.0.x and free ports.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { alive, waitFor } from '../harness/net.ts';
import { httpGet, radioctl, startEtcd, startRadiod, type Etcd, type Radiod } from '../harness/components.ts';

const TTL = 3;

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function nodeNames(client: Etcd3): Promise<string[]> {
  return Object.keys(await client.getAll().prefix('/radioai/v1/nodes/').strings()).map((k) => k.split('/').pop()!).sort();
}

describe('radiod with its embedded etcd', () => {
  let node: Radiod | undefined;
  after(async () => {
    await node?.stop();
  });

  it('serves /health, registers itself, and stops cleanly on SIGTERM leaving no child process behind', async () => {
    node = await startRadiod({ name: 'solo', leaseTtl: TTL });
    const h = await node.health();
    assert.equal(h.status, 200);
    assert.equal(h.body.node, 'solo');
    assert.equal(h.body.etcd, 'connected');
    await waitFor(async () => (await node!.health()).body.master === 'solo', 10_000, 'solo to be master');
    await waitFor(() => childrenOf(node!.proc.pid).length === 2, 10_000, 'etcd and icecast2 to run');
    // Stray signals (an operator's kill -HUP, SIGUSR1/2, SIGPIPE) never end radiod.
    for (const sig of ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGPIPE'] as const) {
      process.kill(node.proc.pid, sig);
      const said = sig === 'SIGHUP' ? 'SIGHUP: listener log' : `${sig} ignored`;
      await waitFor(() => node!.proc.output().includes(said), 5000, `radiod to log ${sig}`);
      assert.equal((await node.health()).status, 200, `healthy after ${sig}`);
    }
    const children = childrenOf(node.proc.pid);
    const names = children.map((pid) => execFileSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' }).trim()).sort();
    assert.deepEqual(names, ['etcd', 'icecast2']);

    const bad = await httpGet(`http://${node.host}:${node.httpPort}/nope`);
    assert.equal(bad.status, 404);
    assert.equal(bad.body, 'no such mount\n');

    const t0 = Date.now();
    const { code, signal } = await node.proc.kill('SIGTERM');
    const took = Date.now() - t0;
    assert.equal(signal, null, node.proc.output());
    assert.equal(code, 0, node.proc.output());
    assert.ok(took < 10_000, `stop took ${took} ms`);
    for (const pid of children) assert.ok(!alive(pid), `child ${pid} was stopped`);
    assert.doesNotMatch(node.proc.output(), /uv_loop_close|Assertion failed/);
  });

  it("uses an etcd already serving its embedded port (Debian's etcd service) instead of starting one", async () => {
    const system = await startEtcd();
    let n: Radiod | undefined;
    try {
      const port = new URL(system.url).port;
      n = await startRadiod({ name: 'withsystem', leaseTtl: TTL, extraArgs: ['--embedded-etcd-port', port] });
      assert.equal((await n.health()).body.etcd, 'connected');
      assert.match(n.proc.output(), new RegExp(`an etcd already serves 127\\.0\\.0\\.1:${port}`));
      await waitFor(() => childrenOf(n!.proc.pid).length === 1, 10_000, 'icecast2 to run');
      assert.deepEqual(childrenOf(n.proc.pid).map((pid) => execFileSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' }).trim()), ['icecast2'], 'no etcd of its own');
      const st = await radioctl(system.url, ['--json', 'status']);
      assert.deepEqual((JSON.parse(st.stdout) as { nodes: { name: string }[] }).nodes.map((x) => x.name), ['withsystem']);
    } finally {
      await n?.stop();
      await system.stop();
    }
  });
});

describe('two radiod nodes sharing one etcd', () => {
  let etcd: Etcd;
  let client: Etcd3;
  const nodes: Radiod[] = [];
  after(async () => {
    for (const n of nodes) await n.stop();
    client?.close();
    await etcd?.stop();
  });

  it('elect exactly one master, drop a killed node within LEASE_TTL + 1 s and re-elect within LEASE_TTL + 2 s', async (t) => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.url });
    nodes.push(await startRadiod({ name: 'alpha', host: '127.0.0.2', etcd: etcd.url, leaseTtl: TTL }));
    await waitFor(async () => (await nodes[0]!.health()).body.master === 'alpha', 10_000, 'alpha master');
    nodes.push(await startRadiod({ name: 'beta', host: '127.0.0.3', etcd: etcd.url, leaseTtl: TTL }));
    await waitFor(async () => (await nodeNames(client)).length === 2, 10_000, 'both nodes registered');
    await waitFor(async () => (await nodes[1]!.health()).body.master === 'alpha', 10_000, 'beta sees alpha as master');
    const st = JSON.parse((await radioctl(etcd.url, ['--json', 'status'])).stdout) as { master: string; nodes: { name: string; role: string; addresses: string[] }[] };
    assert.equal(st.master, 'alpha');
    assert.deepEqual(st.nodes.map((n) => [n.name, n.role, n.addresses[0]]), [['alpha', 'master', '127.0.0.2'], ['beta', 'relay', '127.0.0.3']]);

    const [alpha, beta] = nodes as [Radiod, Radiod];
    const t0 = Date.now();
    process.kill(alpha.proc.pid, 'SIGKILL');
    await waitFor(async () => !(await nodeNames(client)).includes('alpha'), (TTL + 1) * 1000, 'alpha to leave');
    const gone = Date.now() - t0;
    await waitFor(async () => (await beta.health()).body.master === 'beta', (TTL + 2) * 1000 - gone, 'beta to become master');
    const master = Date.now() - t0;
    t.diagnostic(`kill -9 to node removal: ${gone} ms; to new master: ${master} ms (LEASE_TTL ${TTL} s)`);
    const h = await beta.health();
    assert.equal(h.body.role, 'master');
    assert.equal(h.body.nodes, 1);
  });

  it('keeps serving from the last known state while etcd is unreachable, and recovers', async () => {
    const beta = nodes[1]!;
    process.kill(etcd.proc.pid, 'SIGSTOP');
    try {
      const h = await waitFor(async () => {
        const r = await beta.health();
        return r.body.etcd === 'unreachable' ? r : null;
      }, 10_000, 'health to report etcd unreachable');
      assert.equal(h.status, 200, 'the node keeps serving');
      assert.equal(h.body.master, 'beta', 'with the last known state');
      assert.match(beta.proc.output(), /etcd unreachable: serving the last known cluster state/);
    } finally {
      process.kill(etcd.proc.pid, 'SIGCONT');
    }
    await waitFor(async () => (await beta.health()).body.etcd === 'connected', 15_000, 'etcd connected again');
    await waitFor(async () => (await nodeNames(client)).includes('beta'), 15_000, 'beta registered again');
  });

  it('restarts a crashed worker thread while /health keeps answering', async (t) => {
    const gamma = await startRadiod({ name: 'gamma', host: '127.0.0.4', etcd: etcd.url, leaseTtl: TTL, env: { RADIOAI_FAULTS: '1' } });
    nodes.push(gamma);
    process.kill(gamma.proc.pid, 'SIGUSR2');
    // A request in flight on the crashing thread dies with it, as with any
    // crash; a client that retries once (as health checkers do) must always
    // get its answer from the surviving worker.
    let ok = 0;
    let retried = 0;
    let failed = 0;
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      let status = 0;
      try {
        status = (await gamma.health()).status;
      } catch {
        retried++;
        status = await gamma.health().then((h) => h.status, () => 0);
      }
      if (status === 200) ok++;
      else failed++;
      await new Promise((r) => setTimeout(r, 10));
    }
    t.diagnostic(`${ok} health checks answered, ${retried} needed one retry`);
    await waitFor(() => /worker 0 exited with code 1; restarting/.test(gamma.proc.output()), 5000, 'the restart to be logged');
    assert.match(gamma.proc.output(), /worker 0 failed: Error: fault injected: exception in a timer/);
    assert.ok(alive(gamma.proc.pid), 'radiod is still running');
    assert.equal(failed, 0, `${failed} of ${ok + failed} health checks failed during the restart`);
    // Both workers serve again: connections spread over the threads.
    const seen = new Set<unknown>();
    await waitFor(async () => {
      seen.add((await gamma.health()).body.worker);
      return seen.size === 2;
    }, 10_000, 'both workers to answer');
  });
});
