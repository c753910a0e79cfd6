/**
 * The control plane's decisions on their own: when etcd counts as there
 * and when a node is out of service; which master a node acts on and what
 * its Icecast should be; when a stalled relay is asked for again; what the
 * node reports and what its workers see; the zone serial and the outbound
 * rate; whom the peer watch probes; and the status page's feed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/load-config.ts';
import type { Snapshot } from '../../../src/ipc/snapshot.ts';
import { RELAY_RETRY_MS, RelayRetry, actingMaster, icecastDesired, type IcecastInputs } from '../../../src/node/acting-master.ts';
import { ETCD_SILENCE_MS, etcdConnected, outOfService } from '../../../src/node/etcd-watch.ts';
import { LiveFeed } from '../../../src/node/live-feed.ts';
import { peersOf } from '../../../src/node/membership.ts';
import { BandwidthMeter, ZoneSerial, nodeInfo, nodeStatus } from '../../../src/node/node-view.ts';
import type { NodeInfo } from '../../../src/state/cluster-state.ts';
import { parseMountRecord, type MountRecord } from '../../../src/state/mount-record.ts';

function info(name: string, address: string, over: Partial<NodeInfo> = {}): NodeInfo {
  return {
    name, addresses: [address], httpPort: 80, dnsPort: 53, icecastPort: 8000, icecastInternalPort: 8001, proxy: true,
    maxListeners: 0, bandwidthLimit: 0, version: '0', startedAt: '', ...over,
  };
}

const mount = (path: string): MountRecord => parseMountRecord({ path, username: 'u', password: 'p', relay: null, fallback: null, transcode: null });

describe('etcd there, or cut off', () => {
  it('counts etcd as there for ETCD_SILENCE_MS after its last answer', () => {
    assert.equal(etcdConnected(1000, 1000 + ETCD_SILENCE_MS - 1), true);
    assert.equal(etcdConnected(1000, 1000 + ETCD_SILENCE_MS), false);
  });
  it('takes a node out of service only when no member answers for a whole TTL and others can take its listeners', () => {
    const cut = { connected: false, reachable: false, silentMs: 5000, leaseTtlS: 5, others: true };
    assert.equal(outOfService(cut), true);
    assert.equal(outOfService({ ...cut, reachable: true }), false, 'members answer without a quorum: every node is alike, each serves');
    assert.equal(outOfService({ ...cut, silentMs: 4999 }), false, 'not yet a TTL');
    assert.equal(outOfService({ ...cut, others: false }), false, 'alone, it serves rather than send listeners nowhere');
    assert.equal(outOfService({ ...cut, connected: true }), false);
  });
});

describe('the master a node acts on, and its Icecast', () => {
  it('follows the election, or while cut off steps down to the next candidate', () => {
    assert.equal(actingMaster('a', 'a', ['a', 'b', 'c'], false), 'a');
    assert.equal(actingMaster('a', 'a', ['a', 'b', 'c'], true), 'b');
    assert.equal(actingMaster('b', 'a', ['a', 'b', 'c'], true), 'a');
    assert.equal(actingMaster('a', null, ['a'], true), null);
  });

  const base: IcecastInputs = {
    self: 'b', master: 'a', candidates: ['a', 'b', 'c'], outOfService: false,
    nodes: new Map([['a', info('a', '10.0.0.1')], ['b', info('b', '10.0.0.2')], ['c', info('c', '10.0.0.3', { icecastInternalPort: 9001 })]]),
    mounts: [mount('/z.ogg'), mount('/a.ogg')], relayRetry: new Map(), icecastAllow: [], ownAddresses: ['10.0.0.2'],
  };
  it('is the standby on the next candidate, a relay further down, and waits without a master', () => {
    const b = icecastDesired(base)!;
    assert.equal(b.role, 'standby');
    assert.deepEqual(b.master, { name: 'a', host: '10.0.0.1', port: 8001 });
    assert.deepEqual(b.mounts.map((m) => m.path), ['/a.ogg', '/z.ogg'], 'in a stable order, so the configuration only changes when they do');
    assert.equal(icecastDesired({ ...base, self: 'c' })!.role, 'relay');
    assert.equal(icecastDesired({ ...base, self: 'a' })!.role, 'master');
    assert.equal(icecastDesired({ ...base, outOfService: true })!.role, 'relay', 'cut off, nobody\'s standby');
    assert.equal(icecastDesired({ ...base, master: null }), null);
  });
  it('lets in only the nodes, loopback and ICECAST_ALLOW, or anyone when told', () => {
    const allow = icecastDesired({ ...base, icecastAllow: ['192.0.2.9'] })!.allow!;
    for (const a of ['10.0.0.1', '10.0.0.3', '127.0.0.1', '192.0.2.9']) assert.ok(allow.includes(a), a);
    assert.equal(icecastDesired({ ...base, icecastAllow: null })!.allow, null);
  });
  it('asks a stalled relay again at once, then at most every RELAY_RETRY_MS per mount', () => {
    const r = new RelayRetry();
    const live = { '/a.ogg': { ready: true, source: true, listeners: 0 }, '/b.ogg': { ready: false, source: false, listeners: 0 }, '/c.ogg': { ready: true, source: true, listeners: 0 } };
    const has = (p: string): boolean => p === '/c.ogg';
    assert.deepEqual(r.check(live, has, 0), ['/a.ogg']);
    assert.deepEqual(r.check(live, has, RELAY_RETRY_MS - 1), []);
    assert.deepEqual(r.check(live, has, RELAY_RETRY_MS), ['/a.ogg']);
    assert.equal(r.counts.get('/a.ogg'), 2);
    assert.equal(r.counts.has('/b.ogg'), false, 'not live on the master: nothing to relay');
  });
});

describe('what a node says and what its workers see', () => {
  it('reports the stream\'s description only as the master, whose Icecast holds the source', () => {
    const icecast = new Map([['/live.ogg', { info: { title: 'T', name: '', description: '', genre: '', url: '', contentType: 'application/ogg', bitrate: 128, streamStart: '' } }]]);
    const common = {
      paths: ['/live.ogg', '/off.ogg'], icecastMounts: icecast, listenersOf: (p: string) => (p === '/live.ogg' ? 3 : 0), listeners: 3, bandwidth: 384_000,
      icecastReady: true, etcdMember: false, serving: true, httpsPort: 443, now: new Date(0),
    };
    const m = nodeStatus({ ...common, master: true });
    assert.deepEqual(m.mounts['/live.ogg'], { ready: true, source: true, listeners: 3, info: icecast.get('/live.ogg')!.info });
    assert.deepEqual(m.mounts['/off.ogg'], { ready: false, source: false, listeners: 0 });
    assert.equal(m.httpsPort, 443);
    assert.deepEqual(nodeStatus({ ...common, master: false }).mounts['/live.ogg'], { ready: true, source: false, listeners: 3 });
  });
  it('registers its addresses, ports and limits', async () => {
    const c = await loadConfig(['--domain', 'radio.test', '--name', 'n1', '--public-ip', '192.0.2.1', '--max-listeners', '50', '--config', '/dev/null'], { env: {} });
    const i = nodeInfo(c, new Date(0));
    assert.deepEqual([i.name, i.addresses, i.httpPort, i.icecastPort, i.icecastInternalPort, i.maxListeners], ['n1', ['192.0.2.1'], 80, 8000, 8001, 50]);
    assert.equal(i.startedAt, '1970-01-01T00:00:00.000Z');
  });
  it('moves the zone serial only when what the zone answers changes, and never backwards', () => {
    const z = new ZoneSerial();
    const node = { name: 'a', addresses: ['10.0.0.1'], alive: true, etcdHealthy: false } as Parameters<ZoneSerial['next']>[0][number];
    const first = z.next([node], 1_000_000);
    assert.equal(first, 1000);
    assert.equal(z.next([node], 2_000_000), 1000, 'unchanged zone, unchanged serial');
    assert.equal(z.next([{ ...node, addresses: ['10.0.0.2'] }], 500_000), 1001, 'a clock going back still moves it forward');
  });
  it('measures outbound bits per second across the counter\'s wrap', () => {
    const m = new BandwidthMeter();
    assert.equal(m.measure(100, 1000), 0);
    assert.equal(m.measure(116, 2000), 16 * 1024 * 8);
    assert.equal(m.measure(4, 3000), ((4 - 116) >>> 0) * 1024 * 8, 'a 32-bit wrap');
  });
  it('probes every other node at its HTTP port and its own Icecast', () => {
    const peers = peersOf([info('a', '10.0.0.1'), info('b', '10.0.0.2', { icecastInternalPort: 0 }), info('c', '10.0.0.3')], 'c');
    assert.deepEqual(peers, [
      { name: 'a', host: '10.0.0.1', httpPort: 80, icecastPort: 8001 },
      { name: 'b', host: '10.0.0.2', httpPort: 80, icecastPort: 8000 },
    ]);
  });
});

describe('the status page\'s feed', () => {
  const snap = (listeners: number, title = 'x'): Snapshot => ({
    seq: 1, contentVersion: 1, etcdConnected: true, stateLoaded: true, draining: false, outOfService: false, etcdSeenAt: 0, self: 'a', master: 'a', dropped: 0, zoneSerial: 1,
    credentialSalt: '', nodes: [],
    mounts: [{ slot: 0, path: '/m.ogg', relay: false, transcoded: false, fallbackPath: null, sourceConnected: true, listeners, readyOn: ['a'], credential: '', kickedAt: 0,
      info: { username: '', title, name: '', description: '', genre: '', url: '', contentType: '', bitrate: 0, streamStart: '' } }],
  });
  it('sends figures only when they change, again after a worker restart, and samples every 30 s', () => {
    const f = new LiveFeed();
    const first = f.tick(snap(1), [], () => 0, 0);
    assert.ok(first !== null);
    assert.equal(f.tick(snap(1), [], () => 0, 1000), null, 'nothing changed but the time');
    assert.deepEqual((JSON.parse(f.tick(snap(2), [], () => 0, 2000)!) as { mounts: { history: number[] }[] }).mounts[0]!.history, [1, 2]);
    f.resend();
    assert.ok(f.tick(snap(2), [], () => 0, 3000) !== null);
    const at30 = JSON.parse(f.tick(snap(3, 'y'), [], () => 0, 30_000)!) as { at: number; mounts: { history: number[]; title: string }[] };
    assert.deepEqual(at30.mounts[0]!.history, [1, 3, 3], 'a sample at 30 s, and now');
    assert.equal(at30.mounts[0]!.title, 'y');
    assert.equal(at30.at, 30_000);
  });
});
