/**
 * The cluster's tables fed a scripted stream of etcd events, as the watch
 * delivers them: records come and go, a malformed one is refused and
 * leaves nothing behind, the election's oldest candidate is the master,
 * the mounts' state is summed across the nodes' status, and one burst of
 * events is one change.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterState, type KeyEvent } from '../../../src/state/cluster-state.ts';
import { MASTER_ELECTION_PREFIX, mountKey, nodeKey, statusKey } from '../../../src/state/keys.ts';

const put = (key: string, value: unknown, createRevision = 1n): KeyEvent => ({ key, value: typeof value === 'string' ? value : JSON.stringify(value), createRevision });
const del = (key: string): KeyEvent => ({ key, value: null, createRevision: 0n });

const mount = (path: string, extra: Record<string, unknown> = {}) => ({ path, username: 'source', password: 'pw-123', relay: null, fallback: null, createdAt: '2026-01-01T00:00:00.000Z', ...extra });
const node = (name: string) => ({
  name, addresses: ['10.0.0.1'], httpPort: 80, dnsPort: 53, icecastPort: 8000, icecastInternalPort: 8001,
  proxy: true, maxListeners: 0, bandwidthLimit: 0, version: '1.0.0', startedAt: '2026-01-01T00:00:00.000Z',
});
const status = (mounts: Record<string, { ready: boolean; source: boolean; listeners: number }>) => ({
  listeners: Object.values(mounts).reduce((a, m) => a + m.listeners, 0), bandwidth: 0, icecastReady: true, etcdMember: true,
  updatedAt: '2026-01-01T00:00:00.000Z', mounts,
});

/** Feeds `events` in one turn of the event loop; resolves with the number of `change` events it caused. */
async function feed(state: ClusterState, events: KeyEvent[]): Promise<number> {
  let changes = 0;
  const count = (): void => {
    changes++;
  };
  state.on('change', count);
  for (const e of events) state.apply(e);
  await new Promise((r) => setImmediate(r));
  state.off('change', count);
  return changes;
}

describe('cluster state from a scripted event stream', () => {
  it('keeps records as they come and go, one change per burst', async () => {
    const s = new ClusterState();
    assert.equal(await feed(s, [put(mountKey('/live.ogg'), mount('/live.ogg')), put(mountKey('/jazz.mp3'), mount('/jazz.mp3', { fallback: '/live.ogg' })), put(nodeKey('a'), node('a'))]), 1);
    assert.deepEqual([...s.mounts.keys()].sort(), ['/jazz.mp3', '/live.ogg']);
    assert.equal(s.mounts.get('/jazz.mp3')!.fallback, '/live.ogg');
    assert.deepEqual([...s.nodes.keys()], ['a']);
    assert.equal(await feed(s, [del(mountKey('/jazz.mp3'))]), 1);
    assert.deepEqual([...s.mounts.keys()], ['/live.ogg']);
    assert.equal(await feed(s, [del(mountKey('/never.ogg'))]), 0, 'deleting what is not there changes nothing');
  });

  it('refuses malformed records and drops what was there', async () => {
    const s = new ClusterState();
    await feed(s, [put(mountKey('/live.ogg'), mount('/live.ogg')), put(nodeKey('a'), node('a'))]);
    await feed(s, [
      put(mountKey('/live.ogg'), '{not json'),
      put(mountKey('/other.ogg'), mount('/elsewhere.ogg')),
      put(nodeKey('a'), { ...node('a'), addresses: ["#{process.read('id')}"] }),
      put(nodeKey('b'), node('c')),
    ]);
    assert.equal(s.mounts.size, 0, 'a refused record is treated as absent');
    assert.equal(s.nodes.size, 0);
    await feed(s, [put(mountKey('/live.ogg'), mount('/live.ogg'))]);
    assert.deepEqual([...s.mounts.keys()], ['/live.ogg'], 'a good value after a bad one is taken');
  });

  it('names the oldest candidate master, and the next when it leaves', async () => {
    const s = new ClusterState();
    await feed(s, [put(`${MASTER_ELECTION_PREFIX}2`, 'b', 20n), put(`${MASTER_ELECTION_PREFIX}1`, 'a', 10n), put(`${MASTER_ELECTION_PREFIX}3`, 'c', 30n)]);
    assert.equal(s.master(), 'a');
    assert.deepEqual(s.masterCandidates(), ['a', 'b', 'c']);
    await feed(s, [del(`${MASTER_ELECTION_PREFIX}1`)]);
    assert.equal(s.master(), 'b');
    await feed(s, [put(`${MASTER_ELECTION_PREFIX}4`, 'not a node name!', 5n)]);
    assert.equal(s.master(), 'b', 'a candidate that is not a node name is refused');
    await feed(s, [del(`${MASTER_ELECTION_PREFIX}2`), del(`${MASTER_ELECTION_PREFIX}3`)]);
    assert.equal(s.master(), null);
  });

  it('sums a mount across the nodes\' status', async () => {
    const s = new ClusterState();
    await feed(s, [
      put(statusKey('a'), status({ '/live.ogg': { ready: true, source: true, listeners: 3 } })),
      put(statusKey('b'), status({ '/live.ogg': { ready: true, source: false, listeners: 4 }, '/jazz.mp3': { ready: false, source: false, listeners: 0 } })),
      put(statusKey('c'), status({ '/live.ogg': { ready: false, source: false, listeners: 1 } })),
    ]);
    const live = s.mountSummary('/live.ogg');
    assert.deepEqual({ ...live, info: null }, { listeners: 8, source: true, readyOn: ['a', 'b'], info: null });
    await feed(s, [del(statusKey('a'))]);
    assert.deepEqual(s.mountSummary('/live.ogg').readyOn, ['b']);
    assert.equal(s.mountSummary('/live.ogg').source, false);
    assert.equal(s.mountSummary('/none').listeners, 0);
  });
});
