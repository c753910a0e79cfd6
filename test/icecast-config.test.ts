/**
 * The generated Icecast configuration: hostile values (from a restore file
 * or etcd written by hand) never change the XML's structure, and the roles
 * produce the elements Icecast needs. The structure check compares the tag
 * sequence with that of a benign render; the value check decodes the text.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderIcecastConfig, type IcecastConfigInput } from '../src/icecast/icecast-config.ts';
import type { MountRecord } from '../src/state/mount-record.ts';

const mount = (over: Partial<MountRecord>): MountRecord => ({
  path: '/m.ogg', username: 'user', password: 'pass', relay: null, fallback: null, transcode: null, createdAt: '', ...over,
});

const base: IcecastConfigInput = {
  role: 'master', bindAddrs: ['127.0.0.1'], port: 8000, hostname: 'node1', adminPassword: 'adm', sourcePassword: 'src',
  mounts: [], master: { host: '10.0.0.1', port: 8000 }, limits: { clients: 100, queueSize: 524288, burstSize: 65536 },
  logDir: '/var/lib/radioai/icecast/log', changeOwner: { user: 'nobody', group: 'nogroup' },
};

const tags = (xml: string): string[] => [...xml.matchAll(/<\/?([A-Za-z-]+)[^>]*>/g)].map((m) => m[0].replace(/>.*/, '>').replace(/\s.*>/, '>'));
const decode = (s: string): string => s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e]!);
const texts = (xml: string, tag: string): string[] => [...xml.matchAll(new RegExp(`<${tag}>([^<]*)</${tag}>`, 'g'))].map((m) => decode(m[1]!));

describe('Icecast configuration', () => {
  const hostile = ['</password><mount-name>/evil</mount-name><password>', 'a&b', '"quoted"', "it's", ']]>', '<![CDATA[x]]>', '<!-- -->'];

  for (const role of ['master', 'relay'] as const) {
    it(`keeps its structure with hostile values (${role})`, () => {
      const benign = renderIcecastConfig({ ...base, role, mounts: [mount({ relay: 'http://h:1/x', fallback: '/f' })] });
      for (const v of hostile) {
        const xml = renderIcecastConfig({
          ...base, role, hostname: v, adminPassword: v,
          master: { host: v, port: 8000 },
          mounts: [mount({ path: `/${v}`, username: v, password: v, relay: `http://h:1/x?a=${v}`, fallback: `/${v}` })],
        });
        assert.deepEqual(tags(xml), tags(benign), `structure changed by ${JSON.stringify(v)}`);
        assert.ok(!xml.includes(']]>'), 'no raw CDATA terminator');
        assert.ok(texts(xml, 'mount-name').includes(`/${v}`), 'the value survives escaping');
        if (role === 'master') assert.deepEqual(texts(xml, 'password').slice(0, 1), [v]);
        assert.deepEqual(texts(xml, 'admin-password'), [v]);
      }
    });
  }

  it('refuses characters XML cannot carry', () => {
    assert.throws(() => renderIcecastConfig({ ...base, mounts: [mount({ password: 'a\u0000b' })] }), /cannot be written to XML/);
  });

  it('gives the master the sources and the others relays of the master', () => {
    const mounts = [mount({ path: '/a.ogg', fallback: '/b.ogg' }), mount({ path: '/b.ogg', relay: 'http://u:p%40w@radio.example:8080/live?x=1' })];
    const master = renderIcecastConfig({ ...base, mounts });
    assert.deepEqual(texts(master, 'mount-name'), ['/a.ogg', '/b.ogg']);
    assert.deepEqual(texts(master, 'fallback-mount'), ['/b.ogg']);
    assert.deepEqual(texts(master, 'local-mount'), ['/b.ogg'], 'only the relay mount is pulled');
    assert.deepEqual(texts(master, 'server'), ['radio.example']);
    assert.deepEqual(texts(master, 'mount').filter((m) => m.startsWith('/live')), ['/live?x=1']);
    assert.deepEqual(texts(master, 'username'), ['user', 'user', 'u']);
    assert.ok(texts(master, 'password').includes('p@w'));
    const relay = renderIcecastConfig({ ...base, role: 'relay', mounts });
    assert.deepEqual(texts(relay, 'local-mount'), ['/a.ogg', '/b.ogg']);
    assert.deepEqual(texts(relay, 'server'), ['10.0.0.1', '10.0.0.1']);
    assert.deepEqual(texts(relay, 'on-demand'), ['0', '0']);
    assert.ok(!relay.includes('<username>user</username>'), 'relay nodes hold no mount credentials');
  });
});
