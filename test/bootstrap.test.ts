/**
 * A new node finds the cluster through radioai's own DNS (docs/cluster.md,
 * "Procedure"): two nodes with etcd members on the standard client port 2379 of
 * 127.0.12.1-2, then a third machine with nothing but
 * ETCD_SERVER=etcd.DOMAIN, asking the first node's DNS (RESOLVER, which
 * stands for the zone's delegation). It joins, enters stream.DOMAIN and
 * serves the cluster's audio.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster, type ClusterPorts } from '../harness/cluster.ts';
import { freePortOn, waitFor } from '../harness/net.ts';
import { createMount, radioctl, tempDir, type Creds } from '../harness/components.ts';
import { dig, streamAddresses } from '../harness/dig.ts';
import { KeepSource, Listener, ffmpegSource, icecastUrl, oggPages } from '../harness/stream.ts';

const HOSTS = ['127.0.12.1', '127.0.12.2', '127.0.12.3'];

describe('bootstrap through DNS', () => {
  let c: Cluster;
  let creds: Creds;
  let source: KeepSource | null = null;
  const ns = (): { host: string; dnsPort: number } => ({ host: HOSTS[0]!, dnsPort: c.ports.dns });

  before(async () => {
    const pick = (): Promise<number> => freePortOn(HOSTS);
    const ports: ClusterPorts = { http: await pick(), dns: await pick(), icecast: await pick(), icecastInternal: await pick(), etcdClient: 2379, etcdPeer: 2380 };
    c = await Cluster.up({ dir: tempDir('bootstrap'), size: 2, firstAddress: HOSTS[0], ports, leaseTtl: 3, workers: 1 });
    creds = await createMount(c.etcdUrls.join(','), ['create-mount', '/live.ogg']);
    source = new KeepSource(() => ffmpegSource(icecastUrl(creds.username, creds.password, HOSTS[0]!, c.ports.icecast, '/live.ogg')));
  });
  after(async () => {
    await source?.stop();
    await c?.down();
  });

  it('etcd.DOMAIN lists the nodes whose etcd member is healthy', async () => {
    await waitFor(async () => {
      const a = (await dig(ns(), 'etcd.radio.test', 'A', '+short')).raw.trim().split('\n').filter(Boolean).sort();
      return a.join() === HOSTS.slice(0, 2).join();
    }, 15_000, 'both members in etcd.radio.test');
  });

  it('a node given only ETCD_SERVER=etcd.DOMAIN joins, enters DNS and serves audio', async () => {
    const n = await c.join();
    assert.equal(n.host, HOSTS[2]);
    const log = n.radiod!.proc.output();
    assert.match(log, /etcd at http:\/\/127\.0\.12\.[12]:2379, http:\/\/127\.0\.12\.[12]:2379/, 'it found both members through DNS');
    assert.equal((await n.radiod!.health()).body.etcd, 'connected');

    await waitFor(async () => (await streamAddresses(ns())).join() === HOSTS.join(), 10_000, 'the new node in stream.radio.test');
    const st = JSON.parse((await radioctl(c.etcdUrls.join(','), ['--json', 'status'])).stdout) as { nodes: { name: string; alive: boolean }[] };
    assert.deepEqual(st.nodes.filter((x) => x.alive).map((x) => x.name).sort(), ['node1', 'node2', 'node3']);
    // It runs no etcd member, so it is not offered as one.
    const members = (await dig(ns(), 'etcd.radio.test', 'A', '+short')).raw;
    assert.doesNotMatch(members, /127\.0\.12\.3/);

    const heard = await waitFor(async () => {
      const l = new Listener(`http://${HOSTS[2]}:${c.ports.http}/live.ogg`, 1 << 16);
      await new Promise((r) => setTimeout(r, 1500));
      l.close();
      // Steady audio, not just the first pages of a stream that has only started reaching the node.
      return l.status === 200 && oggPages(l.data()) >= 3 && l.bytes > 10_000 ? l : null;
    }, 30_000, 'audio from the joined node', 100);
    assert.ok(heard.bytes > 10_000, `the joined node's listener got ${heard.bytes} bytes`);
  });
});
