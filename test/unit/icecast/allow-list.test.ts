/**
 * The Icecast allow-list: the addresses Icecast will compare (IPv6 in its
 * printed form, IPv4-mapped as IPv4), loopback always, nothing that is not
 * an address, and a file whose modification time moves at every change.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AllowListFile, addressForms, allowedAddresses, renderAllowList } from '../../../src/icecast/allow-list.ts';
import { tempDir } from '../../../harness/components.ts';

describe('Icecast allow-list', () => {
  it('writes addresses as Icecast prints them', () => {
    assert.deepEqual(addressForms('10.0.0.1'), ['10.0.0.1']);
    assert.deepEqual(addressForms('2001:DB8:0:0:0:0:0:1'), ['2001:DB8:0:0:0:0:0:1', '2001:db8::1']);
    assert.deepEqual(addressForms('::ffff:10.1.2.3'), ['10.1.2.3']);
    assert.deepEqual(addressForms('example.org'), []);
    assert.deepEqual(addressForms('10.0.0.1\n0.0.0.0'), []);
  });

  it("lists loopback, this node's addresses, every node's and the extra ones, once each", () => {
    const nodes = [{ addresses: ['127.0.21.1'] }, { addresses: ['127.0.21.2', '::1'] }];
    assert.deepEqual(allowedAddresses(nodes, ['127.0.21.1'], ['192.0.2.7']), ['127.0.0.1', '127.0.21.1', '127.0.21.2', '192.0.2.7', '::1']);
    assert.equal(renderAllowList(['127.0.0.1', '::1']).split('\n').filter((l) => l !== '' && !l.startsWith('#')).join(','), '127.0.0.1,::1');
  });

  it('rewrites the file only on a change, each time with a later modification time', () => {
    const f = new AllowListFile(join(tempDir('allow'), 'allow-ip'), null);
    assert.equal(f.write(['127.0.0.1']), true);
    const t1 = statSync(f.file).mtimeMs;
    assert.equal(f.write(['127.0.0.1']), false, 'same list, no write');
    assert.equal(f.write(['127.0.0.1', '127.0.21.2']), true);
    const t2 = statSync(f.file).mtimeMs;
    assert.ok(Math.floor(t2 / 1000) > Math.floor(t1 / 1000), 'a later whole second even within the same second');
    assert.match(readFileSync(f.file, 'utf8'), /^127\.0\.21\.2$/m);
    assert.equal(statSync(f.file).mode & 0o777, 0o600, 'radiod-only when Icecast runs as radiod');
  });
});
