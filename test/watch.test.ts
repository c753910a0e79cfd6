/**
 * The cluster model survives losing etcd: changes made while a node was cut
 * off, followed by a compaction that removes the history its watch would
 * resume from, reach the node through a full re-read when the link returns.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { waitFor } from '../harness/net.ts';
import { radioctl, startEtcd, startRadiod, type Etcd, type Radiod } from '../harness/components.ts';
import { TcpProxy } from '../harness/tcp-proxy.ts';

describe('watch recovery', () => {
  let etcd: Etcd;
  let proxy: TcpProxy;
  let node: Radiod | undefined;
  let client: Etcd3;
  after(async () => {
    await node?.stop();
    client?.close();
    await proxy?.stop();
    await etcd?.stop();
  });

  it('re-reads everything after a compacted watch and keeps serving meanwhile', async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.url });
    const u = new URL(etcd.url);
    proxy = new TcpProxy({ host: u.hostname, port: Number(u.port) });
    await proxy.start();
    assert.equal((await radioctl(etcd.url, ['create-mount', '/a.ogg'])).code, 0);
    node = await startRadiod({ name: 'cut', etcd: proxy.url, leaseTtl: 10 });
    await waitFor(async () => (await node!.health()).body.mounts === 1, 10_000, 'the node to see /a.ogg');

    await proxy.cut();
    await waitFor(async () => (await node!.health()).body.etcd === 'unreachable', 10_000, 'the node to notice');
    assert.equal((await node.health()).status, 200, 'still serving while cut off');
    for (const p of ['/b.ogg', '/c.ogg']) assert.equal((await radioctl(etcd.url, ['create-mount', p])).code, 0);
    assert.equal((await radioctl(etcd.url, ['delete-mount', '/a.ogg'])).code, 0);
    const rev = (await client.get('/radioai/v1/mounts/b.ogg').exec()).header.revision;
    await client.kv.compact({ revision: rev, physical: true });

    await proxy.restore();
    await waitFor(async () => {
      const h = await node!.health();
      return h.body.etcd === 'connected' && h.body.mounts === 2;
    }, 20_000, 'the node to catch up');
    assert.match(node.proc.output(), /re-reading cluster state .*(compact|cancel)/i);
  });
});
