/**
 * Dead nodes found before their leases run out: real radiods, etcd and
 * Icecast on loopback, with a LEASE_TTL long enough (10 s) that only the
 * other nodes' probes can explain a quick change of master, or a dead
 * node leaving DNS quickly.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive, waitFor } from '../harness/net.ts';
import { peerDead } from '../src/state/peer-watch.ts';
import { streamAddresses } from '../harness/dig.ts';
import { pidFrom, startEtcd, startRadiod, type Etcd, type Radiod } from '../harness/components.ts';

const TTL = 10;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('the decision that a node is dead', () => {
  it('needs every live node but the suspect to suspect it, and at least one', () => {
    assert.equal(peerDead(new Set(['b', 'c']), ['b', 'c']), true);
    assert.equal(peerDead(new Set(['b']), ['b', 'c']), false);
    assert.equal(peerDead(new Set(['b', 'c', 'x']), ['b', 'c']), true);
    assert.equal(peerDead(new Set(), []), false);
  });
});

describe('dead nodes, found by the other nodes', () => {
  let etcd: Etcd;
  const nodes: Radiod[] = [];
  const master = async (n: Radiod): Promise<unknown> => (await n.health()).body.master;

  before(async () => {
    etcd = await startEtcd();
    for (const [name, host] of [['a', '127.0.26.1'], ['b', '127.0.26.2'], ['c', '127.0.26.3'], ['d', '127.0.26.4']] as const) {
      const n = await startRadiod({ name, host, etcd: etcd.url, leaseTtl: TTL });
      nodes.push(n);
      await waitFor(async () => (await n.health()).body.icecast === 'ready', 15_000, `${name} ready`);
    }
    for (const n of nodes) await waitFor(async () => (await master(n)) === 'a', 10_000, `${n.name} to see a as master`);
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await etcd?.stop();
  });

  it("keeps a master whose Icecast alone dies (radiod restarts it), then replaces a killed master long before its lease runs out", async (t) => {
    const [a, b, c, d] = nodes as [Radiod, Radiod, Radiod, Radiod];
    const icecast = pidFrom(join(a.dataDir, 'icecast.pid'))!;
    process.kill(icecast, 'SIGKILL');
    await waitFor(() => {
      const p = pidFrom(join(a.dataDir, 'icecast.pid'));
      return p !== null && p !== icecast && alive(p);
    }, 10_000, "a's Icecast restarted");
    await sleep(2000);
    for (const n of [b, c, d]) assert.equal(await master(n), 'a', `${n.name} kept a as master while only its Icecast was down`);

    const t0 = Date.now();
    const again = pidFrom(join(a.dataDir, 'icecast.pid'))!;
    process.kill(a.proc.pid, 'SIGKILL');
    process.kill(again, 'SIGKILL');
    await waitFor(async () => (await master(b)) === 'b' && (await master(c)) === 'b' && (await master(d)) === 'b', TTL * 1000, 'b to be master on b, c and d');
    const ms = Date.now() - t0;
    t.diagnostic(`master killed -> new master on every survivor ${ms} ms after the kill (LEASE_TTL ${TTL} s)`);
    assert.ok(ms < (TTL * 1000) / 2, `new master after ${ms} ms: the lease, not the probes`);
    assert.match(b.proc.output() + c.proc.output() + d.proc.output(), /node a is dead for b, c, d: revoked its leases/);
  });

  it('takes a dead relay out of DNS long before its lease runs out', async (t) => {
    const [, b, c, d] = nodes as [Radiod, Radiod, Radiod, Radiod];
    await waitFor(async () => (await streamAddresses(b)).includes(d.host), 10_000, 'd in DNS');
    const t0 = Date.now();
    const icecast = pidFrom(join(d.dataDir, 'icecast.pid'))!;
    process.kill(d.proc.pid, 'SIGKILL');
    process.kill(icecast, 'SIGKILL');
    await waitFor(async () => !(await streamAddresses(b)).includes(d.host) && !(await streamAddresses(c)).includes(d.host), TTL * 1000, 'd out of DNS on b and c', 50);
    const ms = Date.now() - t0;
    t.diagnostic(`relay killed -> out of DNS on both other nodes ${ms} ms after the kill (LEASE_TTL ${TTL} s)`);
    assert.ok(ms < (TTL * 1000) / 2, `out of DNS after ${ms} ms: the lease, not the probes`);
    assert.equal(await master(b), 'b', 'the master stays');
  });
});
