/**
 * The generated Icecast configuration: hostile values (from a restore file
 * or etcd written by hand) are refused by the whitelists and never reach the
 * XML (their mount is left out, with a reason), what must be kept is escaped
 * without changing the XML's structure, and the roles produce the elements
 * Icecast needs. The structure check compares the tag sequence with that of
 * a benign render; the value check decodes the text.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderIcecastConfig, type IcecastConfigInput } from '../../../src/icecast/icecast-config.ts';
import type { MountRecord } from '../../../src/state/mount-record.ts';
import { mayTranscode } from '../../../src/icecast/transcoders.ts';
import { icecastRole } from '../../../src/icecast/icecast-role.ts';
import { parseIcecastStats } from '../../../src/icecast/icecast-stats.ts';

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
  const hostile = ['</password><mount-name>/evil</mount-name><password>', 'a&b', '"quoted"', "it's", ']]>', '<![CDATA[x]]>', '<!-- -->', "#{process.read('id')}", 'a\u0000b'];
  const render = (c: Partial<IcecastConfigInput>): { xml: string; refused: string[] } => {
    const refused: string[] = [];
    return { xml: renderIcecastConfig({ ...base, ...c }, (why) => refused.push(why)), refused };
  };

  for (const role of ['master', 'relay'] as const) {
    it(`leaves out a mount with a hostile value and says why (${role})`, () => {
      const good = mount({ path: '/good.ogg' });
      const { xml: benign } = render({ role, mounts: [good] });
      for (const v of hostile) {
        const fields: Partial<MountRecord>[] = [{ path: `/${v}` }, { fallback: `/${v}` }];
        fields.push({ username: v }, { password: v });
        if (role === 'master') fields.push({ relay: `http://${encodeURIComponent(v)}:1/x` });
        for (const over of fields) {
          const { xml, refused } = render({ role, mounts: [mount({ path: '/bad.ogg', ...over }), good] });
          assert.equal(xml, benign, `${JSON.stringify(over)} changed more than leaving its mount out`);
          assert.equal(refused.length, 1, `one reason for ${JSON.stringify(over)}`);
          assert.match(refused[0]!, /left out of the Icecast configuration: .* refused|Invalid URL/);
        }
      }
    });
  }

  it('gives the standby every mount with its login and no relay at all, so that a source is taken the moment it is master', () => {
    const mounts = [mount({ path: '/a.ogg' }), mount({ path: '/ext.ogg', relay: 'http://station.example:8000/live' })];
    const standby = render({ role: 'standby', mounts }).xml;
    assert.deepEqual(texts(standby, 'mount-name'), ['/a.ogg', '/ext.ogg']);
    assert.deepEqual(texts(standby, 'local-mount'), []);
    // The master pulls the external station; each relay node pulls both mounts from the master.
    assert.deepEqual(texts(render({ role: 'master', mounts }).xml, 'local-mount'), ['/ext.ogg']);
    assert.deepEqual(texts(render({ role: 'relay', mounts }).xml, 'local-mount'), ['/a.ogg', '/ext.ogg']);
  });

  it("reads as live only the mounts with a source, not one whose listeners play its fallback", () => {
    // Icecast 2.4's /admin/stats just after /main.ogg's source left, its listener moved to /fb.ogg.
    const xml = `<icestats><listeners>1</listeners>
<source mount="/fb.ogg"><listeners>1</listeners><server_type>application/ogg</server_type><source_ip>127.0.0.1</source_ip><stream_start>Sun, 22 Nov 2026 09:05:11 +0000</stream_start><stream_start_iso8601>2026-11-22T09:05:11+0000</stream_start_iso8601><total_bytes_read>81920</total_bytes_read><total_bytes_sent>40960</total_bytes_sent></source>
<source mount="/main.ogg"><listeners>0</listeners><listenurl>http://127.0.0.1:18123/main.ogg</listenurl><max_listeners>unlimited</max_listeners></source>
</icestats>`;
    const stats = parseIcecastStats(xml);
    assert.deepEqual([...stats.mounts.keys()], ['/fb.ogg']);
    assert.equal(stats.mounts.get('/fb.ogg')!.bytesRead, 81920);
    assert.equal(stats.listeners, 1);
  });

  it('makes the candidate next in line the standby', () => {
    assert.equal(icecastRole('a', 'a', ['a', 'b', 'c']), 'master');
    assert.equal(icecastRole('b', 'a', ['a', 'b', 'c']), 'standby');
    assert.equal(icecastRole('c', 'a', ['a', 'b', 'c']), 'relay');
    // After the master: the first candidate that is not the master, whichever place it has.
    assert.equal(icecastRole('a', 'b', ['a', 'b', 'c']), 'standby');
    // Out of service a node is given no candidates: nobody's standby.
    assert.equal(icecastRole('a', 'b', []), 'relay');
    // A node not campaigning (yet) is never the standby.
    assert.equal(icecastRole('d', 'a', ['a']), 'relay');
  });

  it('writes no relays of a master whose address is hostile', () => {
    const mounts = [mount({ path: '/a.ogg' })];
    for (const host of hostile) {
      const { xml, refused } = render({ role: 'relay', mounts, master: { host, port: 8000 } });
      assert.deepEqual(texts(xml, 'local-mount'), []);
      assert.match(refused[0]!, /no relays of the master: master's address .* refused/);
    }
    const port = render({ role: 'relay', mounts, master: { host: '10.0.0.1', port: 'int_of_string(process.read("id"))' as unknown as number } });
    assert.deepEqual(texts(port.xml, 'local-mount'), []);
    assert.match(port.refused[0]!, /master's port/);
  });

  it("refuses to render at all when radiod's own settings fail (a bug, not data)", () => {
    for (const c of [{ hostname: hostile[0]! }, { adminPassword: 'a b' }, { bindAddrs: ['example.com'] }, { logDir: '/x<y' }, { port: 0 }]) {
      assert.throws(() => render(c), (err: Error & { code?: string }) => err.code === 'RADIOAI_ERR_UNSAFE_VALUE', JSON.stringify(c));
    }
  });

  it('escapes what it must keep: relay credentials of printable text', () => {
    const v = '</password><a>&"\'';
    const { xml, refused } = render({ mounts: [mount({ relay: `http://${encodeURIComponent(v)}:${encodeURIComponent(v)}@h:1/x?a=1&b=2` })] });
    assert.deepEqual(refused, []);
    const benign = render({ mounts: [mount({ relay: 'http://u:p@h:1/x?a=1&b=2' })] }).xml;
    assert.deepEqual(tags(xml), tags(benign), 'structure kept');
    assert.ok(texts(xml, 'password').includes(v), 'the value survives escaping');
    assert.ok(texts(xml, 'mount').includes('/x?a=1&b=2'));
  });

  it('lists the allow-list file and asks for a larger listen backlog', () => {
    const { xml } = render({ allowFile: '/var/lib/radioai/icecast/allow-ip' });
    assert.deepEqual(texts(xml, 'allow-ip'), ['/var/lib/radioai/icecast/allow-ip']);
    assert.deepEqual(texts(xml, 'listen-backlog'), ['128']);
    assert.deepEqual(texts(render({}).xml, 'allow-ip'), [], 'no allow-list unless given');
  });

  it('lets every node take sources, and gives the others relays of the master', () => {
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
    // Any node elected master takes sources on a reload: the credentials are there in both roles.
    assert.deepEqual(texts(relay, 'username'), ['user', 'user']);
    assert.deepEqual(texts(relay, 'mount-name'), texts(master, 'mount-name'));
  });
});

describe('a transcoder on a node that may be cut off', () => {
  const TTL_MS = 3000;
  it('keeps running while its candidacy is acknowledged, whatever the probe says', () => {
    assert.equal(mayTranscode(0, TTL_MS, false), true);
    assert.equal(mayTranscode(1400, TTL_MS, false), true);
  });
  it('stops half a TTL after the last acknowledgement when no etcd member answers: the others take over one TTL after it', () => {
    assert.equal(mayTranscode(1500, TTL_MS, false), false);
    assert.equal(mayTranscode(60_000, TTL_MS, false), false);
  });
  it('keeps running through a lost quorum: members answer, and no lease can expire then', () => {
    assert.equal(mayTranscode(60_000, TTL_MS, true), true);
  });
});
