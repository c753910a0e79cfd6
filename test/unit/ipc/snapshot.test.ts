/**
 * The shared snapshot: a writer publishing continuously while readers in
 * other threads check every snapshot they see; and capacity limits that
 * leave entries out with a count instead of corrupting the buffer.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { SnapshotReader } from '../../../src/ipc/snapshot-reader.ts';
import { credentialHash, credentialMatches } from '../../../src/ipc/credential.ts';
import { NO_STREAM_INFO, type SnapshotInput } from '../../../src/ipc/snapshot.ts';
import { SnapshotWriter } from '../../../src/ipc/snapshot-writer.ts';
import { MOUNT_FIELDS, NODE_FIELDS, type FieldKind } from '../../../src/ipc/records.ts';

function input(i: number): SnapshotInput {
  const nodes = Array.from({ length: 1 + (i % 7) }, (_, j) => ({
    name: `n${i}-${j}`,
    addresses: [`10.${i % 250}.${j}.1`, `::${j}`],
    httpPort: 1000 + j, dnsPort: 53, icecastPort: 8000, icecastInternalPort: 8001, httpsPort: j % 2 ? 0 : 443 + j,
    alive: true, icecastReady: j % 2 === 0, etcdHealthy: true, proxy: true,
    listeners: i, bandwidthKbps: 1, maxListeners: 0, bandwidthLimitKbps: 0,
  }));
  const mounts = Array.from({ length: i % 11 }, (_, j) => ({
    path: `/m${i}/${'x'.repeat(j * 7)}${j}`, relay: false, transcoded: false, fallbackPath: null,
    sourceConnected: true, listeners: i, readyOn: nodes.filter((_, k) => k % 2 === 0).map((n) => n.name),
    info: { ...NO_STREAM_INFO, username: `src-${i}-${j}`, title: `Tïtle ${'é'.repeat(j)} "quoted"`, bitrate: 128 * j, streamStart: j % 2 ? '2026-11-21T20:00:00+0000' : '' },
    credential: createHash('sha256').update(`${i}/${j}`).digest('hex'), kickedAt: j === 0 ? 0 : 1_795_000_000 + j,
  }));
  return { etcdConnected: true, stateLoaded: true, draining: false, outOfService: false, etcdSeenAt: i, self: nodes[0]!.name, master: nodes.at(-1)!.name, zoneSerial: i, nodes, mounts };
}

describe('shared snapshot', () => {
  it('readers in other threads never see a torn snapshot', async () => {
    const writer = new SnapshotWriter({ maxNodes: 16, maxMounts: 16, stringBytes: 8192 });
    const stop = new SharedArrayBuffer(4);
    const workers = [0, 1].map(() => new Worker(new URL('../../../harness/snapshot-check-worker.ts', import.meta.url), { workerData: { sab: writer.sab, stop } }));
    const results = workers.map((w) => new Promise<{ reads: number; distinct: number; torn: number; problems: string[]; retries: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    }));
    await new Promise((r) => setTimeout(r, 200)); // let the readers start
    const until = Date.now() + 3000;
    let i = 1;
    while (Date.now() < until) writer.publish(input(i++));
    Atomics.store(new Int32Array(stop), 0, 1);
    const rs = await Promise.all(results);
    for (const r of rs) {
      assert.deepEqual(r.problems, []);
      assert.equal(r.torn, 0);
      assert.ok(r.distinct > 100, `a reader saw only ${r.distinct} distinct snapshots`);
    }
    const total = rs.reduce((a, r) => a + r.retries, 0);
    // Retries prove the readers did run into the writer and recovered.
    assert.ok(total > 0, 'readers never overlapped the writer; the test did not exercise the lock');
  });

  it('keeps slots stable and resolves fallbacks and readiness', () => {
    const writer = new SnapshotWriter({ maxNodes: 4, maxMounts: 4, stringBytes: 4096 });
    const reader = new SnapshotReader(writer.sab);
    const base = input(3);
    writer.publish({ ...base, mounts: [{ ...base.mounts[0]!, path: '/a' }, { ...base.mounts[1]!, path: '/b', fallbackPath: '/a' }] });
    const s1 = reader.current();
    assert.deepEqual(s1.mounts.map((m) => [m.path, m.slot, m.fallbackPath]), [['/a', 0, null], ['/b', 1, '/a']]);
    assert.deepEqual(s1.mounts[0]!.readyOn, ['n3-0', 'n3-2']);
    writer.publish({ ...base, mounts: [{ ...base.mounts[1]!, path: '/b', fallbackPath: '/a' }] });
    const s2 = reader.current();
    assert.deepEqual(s2.mounts.map((m) => [m.path, m.slot, m.fallbackPath]), [['/b', 1, null]]);
    assert.equal(s2.contentVersion, s1.contentVersion + 1);
  });

  it('leaves out what does not fit and says so, never corrupting the rest', () => {
    const writer = new SnapshotWriter({ maxNodes: 2, maxMounts: 3, stringBytes: 4096 });
    const reader = new SnapshotReader(writer.sab);
    const base = input(10); // 4 nodes, 10 mounts
    const r1 = writer.publish(base);
    assert.equal(r1.dropped.length, 2 + 7);
    assert.match(r1.dropped[0]!, /no free node slot \(SNAPSHOT_NODES=2\)/);
    assert.match(r1.dropped.at(-1)!, /no free mount slot \(SNAPSHOT_MOUNTS=3\)/);
    const s = reader.current();
    assert.equal(s.dropped, 9);
    assert.deepEqual(s.nodes.map((n) => n.name), ['n10-0', 'n10-1']);
    assert.deepEqual(s.mounts.map((m) => m.path), base.mounts.slice(0, 3).map((m) => m.path));

    const long = new SnapshotWriter({ maxNodes: 2, maxMounts: 64, stringBytes: 4096 });
    const mounts = Array.from({ length: 30 }, (_, j) => ({ ...base.mounts[0]!, path: `/${String(j).padStart(2, '0')}${'y'.repeat(197)}` }));
    const r2 = long.publish({ ...base, nodes: base.nodes.slice(0, 1), mounts });
    assert.ok(r2.dropped.length > 0 && r2.dropped.every((d) => /string area full \(SNAPSHOT_BYTES=4096\)/.test(d)));
    const s2 = new SnapshotReader(long.sab).current();
    assert.equal(s2.mounts.length, 30 - r2.dropped.length);
    for (const m of s2.mounts) assert.equal(m.path.length, 200);
  });
  it('carries a salted hash of each mount\'s login, never the password', () => {
    const password = 'Hunter2-sEcReT.pw~x';
    const base = input(3);
    const mount = (w: SnapshotWriter): SnapshotInput['mounts'][number] => ({ ...base.mounts[0]!, path: '/live.ogg', info: { ...NO_STREAM_INFO, username: 'src-live' }, credential: w.credential('src-live', password) });
    const w1 = new SnapshotWriter({ maxNodes: 4, maxMounts: 4, stringBytes: 4096 });
    const w2 = new SnapshotWriter({ maxNodes: 4, maxMounts: 4, stringBytes: 4096 });
    w1.publish({ ...base, mounts: [mount(w1), { ...base.mounts[1]!, credential: '' }] });
    w2.publish({ ...base, mounts: [mount(w2)] });
    const s1 = new SnapshotReader(w1.sab).current();
    const s2 = new SnapshotReader(w2.sab).current();
    const live = s1.mounts.find((m) => m.path === '/live.ogg')!;
    // The reader checks a login against the hash under the buffer's own salt.
    assert.ok(credentialMatches(s1.credentialSalt, live.credential, 'src-live', password));
    assert.ok(!credentialMatches(s1.credentialSalt, live.credential, 'src-live', `${password}x`));
    assert.ok(!credentialMatches(s1.credentialSalt, live.credential, 'other', password), 'the user name is part of the credential');
    assert.equal(live.credential, credentialHash(Buffer.from(s1.credentialSalt, 'hex'), 'src-live', password).toString('hex'));
    assert.equal(s1.mounts.find((m) => m.path !== '/live.ogg')!.credential, '', 'a mount without a credential reads back as none');
    // Salted per buffer (per radiod process): the same password hashes differently, and not as a plain SHA-256.
    assert.notEqual(s1.credentialSalt, s2.credentialSalt);
    assert.notEqual(live.credential, s2.mounts[0]!.credential);
    assert.notEqual(live.credential, createHash('sha256').update(password).digest('hex'));
    // Nowhere in the shared memory: not as text, not in base64 (the form an Authorization header carries).
    for (const w of [w1, w2]) {
      const all = Buffer.from(w.sab);
      for (const form of [password, Buffer.from(password).toString('base64'), Buffer.from(`src-live:${password}`).toString('base64')]) {
        assert.equal(all.indexOf(form), -1, `the snapshot holds ${form}`);
      }
    }
  });

  it('round-trips every field of the node and mount tables, and the writer\'s own view is what readers see', () => {
    const writer = new SnapshotWriter({ maxNodes: 8, maxMounts: 8, stringBytes: 8192 });
    const reader = new SnapshotReader(writer.sab);
    const base = input(5);
    const first = writer.publish(base);
    assert.deepEqual(reader.current(), first.snapshot);
    /** Another value of the same kind: a change to one field must reach the reader, and only it. */
    const other = (kind: FieldKind, v: unknown): unknown => {
      switch (kind) {
        case 'int': return (v as number) + 7;
        case 'flag': return !(v as boolean);
        case 'text': return `${v as string}-é`;
        case 'list': return [...(v as string[]), '192.0.2.9'];
        case 'info': return { ...(v as object), title: 'Änother title', bitrate: 320 };
        case 'hash': return createHash('sha256').update(String(v)).digest('hex');
      }
    };
    for (const f of NODE_FIELDS) {
      if (f.key === 'master' || f.key === 'name') continue; // master follows input.master; the name is the node's key
      const nodes = base.nodes.map((n, i) => (i === 1 ? { ...n, [f.key]: other(f.kind, n[f.key]) } : n));
      const r = writer.publish({ ...base, nodes });
      const seen = reader.current();
      assert.deepEqual(seen, r.snapshot, f.key);
      assert.deepEqual(seen.nodes[1]![f.key], nodes[1]![f.key], `node field ${f.key}`);
      assert.deepEqual(seen.nodes[0], first.snapshot.nodes[0], `node field ${f.key} leaves the others alone`);
    }
    for (const f of MOUNT_FIELDS) {
      if (f.key === 'path') continue; // the mount's key
      const mounts = base.mounts.map((m, i) => (i === 1 ? { ...m, [f.key]: other(f.kind, m[f.key]) } : m));
      const r = writer.publish({ ...base, mounts });
      const seen = reader.current();
      assert.deepEqual(seen, r.snapshot, f.key);
      assert.deepEqual(seen.mounts[1]![f.key], mounts[1]![f.key], `mount field ${f.key}`);
      assert.deepEqual(seen.mounts[0], first.snapshot.mounts[0], `mount field ${f.key} leaves the others alone`);
    }
    // Slots stay while their entries do: a newcomer that sorts first takes a later slot, and the view says so.
    const fresh = new SnapshotWriter({ maxNodes: 8, maxMounts: 8, stringBytes: 8192 });
    const freshReader = new SnapshotReader(fresh.sab);
    const [n1, n2, n3] = base.nodes;
    fresh.publish({ ...base, nodes: [n2!, n3!], mounts: base.mounts.slice(2, 4) });
    const later = fresh.publish({ ...base, nodes: [n1!, n2!, n3!], mounts: base.mounts.slice(0, 4).map((m) => ({ ...m, readyOn: [n3!.name, n1!.name, n2!.name, n1!.name] })) });
    assert.deepEqual(later.snapshot.nodes.map((n) => n.name), [n2!.name, n3!.name, n1!.name]);
    assert.deepEqual(freshReader.current(), later.snapshot);
    // Values past 32 bits read back wrapped, in the view as well.
    const wide = fresh.publish({ ...base, etcdSeenAt: 2 ** 31 + 5, nodes: base.nodes.map((n) => ({ ...n, bandwidthKbps: 2 ** 32 + 9 })), mounts: base.mounts.map((m) => ({ ...m, credential: m.credential.toUpperCase() })) });
    assert.deepEqual(freshReader.current(), wide.snapshot);
    // The keys of records: renamed, they keep no slot of the old name.
    const renamed = writer.publish({ ...base, nodes: base.nodes.map((n, i) => (i === 1 ? { ...n, name: 'renamed' } : n)), master: 'renamed' });
    assert.deepEqual(reader.current(), renamed.snapshot);
    assert.equal(reader.current().master, 'renamed');
    assert.ok(reader.current().nodes.find((n) => n.name === 'renamed')!.master);
  });
});
