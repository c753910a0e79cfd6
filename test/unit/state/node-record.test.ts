/**
 * Validation of node and status records read from etcd: what a node writes
 * passes, every field of the wrong kind is refused with a reason, unknown
 * extra fields are ignored. And what presence does about a node name that
 * is already registered.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseNodeInfo, parseNodeStatus } from '../../../src/state/node-record.ts';
import { describeHolder, holderVerdict } from '../../../src/state/presence.ts';

const node = {
  name: 'n1', addresses: ['10.0.0.1', '2001:db8::1'], httpPort: 80, dnsPort: 53, icecastPort: 8000, icecastInternalPort: 8001,
  proxy: true, maxListeners: 0, bandwidthLimit: 0, version: '1.0.0', startedAt: '2026-01-01T00:00:00.000Z',
};

const status = {
  listeners: 3, bandwidth: 128000, icecastReady: true, etcdMember: false, updatedAt: '2026-01-01T00:00:00.000Z',
  mounts: { '/live.ogg': { ready: true, source: true, listeners: 3, info: { title: 'x'.repeat(5000), name: '', description: '', genre: '', url: '', contentType: 'application/ogg', bitrate: 128, streamStart: '' } } },
};

describe('node records', () => {
  it('accepts what a node writes and ignores extra fields', () => {
    assert.deepEqual(parseNodeInfo('n1', { ...node, future: { x: 1 } }), node);
    assert.equal(parseNodeInfo('n1', { ...node, icecastInternalPort: undefined }).icecastInternalPort, 0, 'older nodes had no separate port');
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['name differs from the key', { name: 'n2' }, /differs from the key/],
    ['address with liquidsoap interpolation', { addresses: ["#{process.read('id')}"] }, /not an IP address/],
    ['address with a host name', { addresses: ['example.com'] }, /not an IP address/],
    ['no address', { addresses: [] }, /addresses/],
    ['too many addresses', { addresses: Array.from({ length: 17 }, (_, i) => `10.0.0.${i}`) }, /addresses/],
    ['address list is a string', { addresses: '10.0.0.1' }, /addresses/],
    ['port as a string', { httpPort: '80' }, /httpPort/],
    ['port with code', { icecastInternalPort: 'int_of_string(process.read("id"))' }, /icecastInternalPort/],
    ['port out of range', { dnsPort: 65536 }, /dnsPort/],
    ['port not whole', { icecastPort: 80.5 }, /icecastPort/],
    ['port zero', { httpPort: 0 }, /httpPort/],
    ['boolean as a string', { proxy: 'yes' }, /proxy/],
    ['negative count', { maxListeners: -1 }, /maxListeners/],
    ['infinite count', { bandwidthLimit: Infinity }, /bandwidthLimit/],
    ['huge version', { version: 'v'.repeat(2000) }, /version/],
  ];
  for (const [what, over, why] of bad) {
    it(`refuses a record with ${what}`, () => {
      assert.throws(() => parseNodeInfo('n1', { ...node, ...over }), (err: Error & { code?: string }) => err.code === 'RADIOAI_ERR_NODE_INVALID' && why.test(err.message));
    });
  }

  it('refuses a key that is not a DNS label and values that are not objects', () => {
    assert.throws(() => parseNodeInfo('bad name', { ...node, name: 'bad name' }), /not a DNS label/);
    assert.throws(() => parseNodeInfo('n1', null), /JSON object/);
    assert.throws(() => parseNodeInfo('n1', [node]), /JSON object/);
  });
});

describe('status records', () => {
  it('accepts what a node writes; long titles are cut, not refused', () => {
    const s = parseNodeStatus('n1', status);
    assert.equal(s.listeners, 3);
    assert.equal(s.mounts['/live.ogg']?.info?.title.length, 1024);
    assert.deepEqual(parseNodeStatus('n1', { ...status, mounts: {} }).mounts, {});
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['listeners as a string', { listeners: 'lots' }, /listeners/],
    ['negative bandwidth', { bandwidth: -5 }, /bandwidth/],
    ['NaN-like bandwidth', { bandwidth: null }, /bandwidth/],
    ['readiness as a number', { icecastReady: 1 }, /icecastReady/],
    ['a mount that is not a mount path', { mounts: { '../etc': { ready: true, source: false, listeners: 0 } } }, /not a mount path/],
    ['a mount whose readiness is a string', { mounts: { '/a': { ready: 'true', source: false, listeners: 0 } } }, /ready/],
    ['a mount with fractional listeners', { mounts: { '/a': { ready: true, source: false, listeners: 1.5 } } }, /listeners/],
    ['mounts as a list', { mounts: [] }, /mounts/],
  ];
  for (const [what, over, why] of bad) {
    it(`refuses a status with ${what}`, () => {
      assert.throws(() => parseNodeStatus('n1', { ...status, ...over }), (err: Error & { code?: string }) => err.code === 'RADIOAI_ERR_NODE_INVALID' && why.test(err.message));
    });
  }
});

describe('presence decisions', () => {
  it("takes over a name held by one of this process's leases or by no lease, and waits on any other", () => {
    const own = new Set(['7587', '7590']);
    assert.equal(holderVerdict('7590', own), 'take-over', 'an earlier lease of this node (re-registration after a lost lease)');
    assert.equal(holderVerdict('0', own), 'take-over', 'a record written by hand, without a lease');
    assert.equal(holderVerdict('9999', own), 'wait', 'another radiod: dead (its lease runs out) or alive (refused)');
  });

  it("names the holder's addresses, or says its record is not one", () => {
    const kv = (v: string) => ({ value: Buffer.from(v) }) as unknown as Parameters<typeof describeHolder>[0];
    assert.match(describeHolder(kv(JSON.stringify(node)), 'n1'), /^addresses 10\.0\.0\.1, 2001:db8::1, HTTP port 80/);
    assert.equal(describeHolder(kv('{"name":"n1","addresses":["#{x}"]}'), 'n1'), 'a record that is not a valid node record');
  });
});
