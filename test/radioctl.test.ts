/**
 * radioctl against a real etcd: every command, its output formats and exit
 * codes, invalid input, a missing mount, etcd down, and a corrupt restore
 * that changes nothing.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { radioctl, startEtcd, tempDir, type Etcd } from '../harness/components.ts';
import { freePort } from '../harness/net.ts';
import { execFileSync } from 'node:child_process';
import { columns } from '../src/cli/columns.ts';
import { ROOT } from '../harness/components.ts';

describe('radioctl', () => {
  let etcd: Etcd;
  const ctl = (...args: string[]) => radioctl(etcd.url, args);
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd.stop();
  });

  it('create-mount prints a username and a strong password', async () => {
    const r = await ctl('create-mount', '/live.ogg');
    assert.equal(r.code, 0, r.stderr);
    const m = /^username: (\S+)\npassword: (\S+)\n$/.exec(r.stdout);
    assert.ok(m, `unexpected output ${JSON.stringify(r.stdout)}`);
    assert.ok(m[2]!.length >= 24, 'password is long');
    const again = await ctl('create-mount', '/live2.ogg');
    assert.notEqual(/password: (\S+)/.exec(again.stdout)![1], m[2], 'passwords differ');
  });

  it('create-mount --json prints path, username and password', async () => {
    const r = await ctl('--json', 'create-mount', '/json.mp3');
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout) as Record<string, string>;
    assert.deepEqual(Object.keys(o), ['path', 'username', 'password']);
    assert.equal(o.path, '/json.mp3');
    const show = JSON.parse((await ctl('--json', 'show-mount', '/json.mp3')).stdout) as Record<string, string>;
    assert.equal(show.password, o.password);
    assert.equal(show.username, o.username);
  });

  it('refuses an existing mount and invalid paths with exit 1 and one line', async () => {
    const dup = await ctl('create-mount', '/live.ogg');
    assert.equal(dup.code, 1);
    assert.equal(dup.stderr, 'radioctl: mount /live.ogg already exists\n');
    for (const bad of ['live.ogg', '/a//b', '/../etc/passwd', '/x.m3u', '/a b', `/${'x'.repeat(200)}`, '/<x>']) {
      const r = await ctl('create-mount', bad);
      assert.equal(r.code, 1, `${bad} accepted`);
      assert.match(r.stderr, /^radioctl: invalid mount path ".*": .+\n$/);
      assert.equal(r.stdout, '');
    }
    const relay = await ctl('create-mount', '/r.ogg', '--relay', 'not a url');
    assert.equal(relay.code, 1);
    assert.match(relay.stderr, /relay "not a url" is not a URL/);
    const fb = await ctl('create-mount', '/f.ogg', '--fallback', '/missing.ogg');
    assert.equal(fb.code, 1);
    assert.match(fb.stderr, /fallback \/missing\.ogg is not a mount/);
  });

  it('prints its version, the package\'s, with exit 0 and without etcd', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await radioctl('http://127.0.0.1:1', ['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `radioctl ${version}\n`);
  });

  it('refuses bad usage with exit 1', async () => {
    assert.equal((await ctl('frobnicate')).code, 1);
    assert.match((await ctl('frobnicate')).stderr, /unknown command "frobnicate"/);
    const r = await ctl('create-mount');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /create-mount needs a mount PATH/);
    const opt = await ctl('delete-mount', '/live.ogg', '--relay', 'http://x/');
    assert.equal(opt.code, 1);
    assert.match(opt.stderr, /delete-mount does not take --relay/);
    const both = await ctl('edit-mount', '/live.ogg', '--relay', 'http://x/', '--no-relay');
    assert.equal(both.code, 1);
  });

  it('creates transcoding mounts with validated parameters', async () => {
    const r = await ctl('create-transcoding-mount', '/out.mp3', '--source', '/live.ogg', '--codec', 'mp3', '--bitrate', '64', '--channels', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^username: \S+\npassword: \S+\n$/);
    const show = await ctl('show-mount', '/out.mp3');
    assert.match(show.stdout, /source: \/live\.ogg\ncodec: mp3\nbitrate: 64\nsamplerate: 44100\nchannels: 1/);
    const opus = JSON.parse((await ctl('--json', 'create-transcoding-mount', '/out.opus', '--source', '/live.ogg')).stdout) as { path: string };
    assert.equal(opus.path, '/out.opus');
    const shown = JSON.parse((await ctl('--json', 'show-mount', '/out.opus')).stdout) as { transcode: { codec: string; samplerate: number } };
    assert.equal(shown.transcode.codec, 'opus');
    assert.equal(shown.transcode.samplerate, 48000);
    const cases: [string[], RegExp][] = [
      [['--source', '/missing.ogg'], /transcoding source \/missing\.ogg is not a mount/],
      [['--source', '/live.ogg', '--codec', 'flac'], /codec "flac" is not one of mp3, vorbis, opus/],
      [['--source', '/live.ogg', '--bitrate', '9999'], /bitrate 9999/],
      [['--source', '/live.ogg', '--channels', '3'], /channels 3 must be 1 or 2/],
      [['--source', '/live.ogg', '--codec', 'opus', '--samplerate', '44100'], /opus takes a samplerate/],
      [['--bitrate', '64'], /needs --source PATH/],
    ];
    for (const [args, why] of cases) {
      const bad = await ctl('create-transcoding-mount', '/bad.mp3', ...args);
      assert.equal(bad.code, 1, args.join(' '));
      assert.match(bad.stderr, why);
    }
  });

  it('edits relay, fallback and password', async () => {
    const before = JSON.parse((await ctl('--json', 'show-mount', '/live2.ogg')).stdout) as Record<string, unknown>;
    assert.equal((await ctl('edit-mount', '/live2.ogg', '--relay', 'http://upstream.example:8000/x.ogg', '--fallback', '/live.ogg')).code, 0);
    let m = JSON.parse((await ctl('--json', 'show-mount', '/live2.ogg')).stdout) as Record<string, unknown>;
    assert.equal(m.relay, 'http://upstream.example:8000/x.ogg');
    assert.equal(m.fallback, '/live.ogg');
    assert.equal(m.password, before.password);
    const pw = await ctl('edit-mount', '/live2.ogg', '--new-password', '--no-relay', '--no-fallback');
    assert.equal(pw.code, 0, pw.stderr);
    m = JSON.parse((await ctl('--json', 'show-mount', '/live2.ogg')).stdout) as Record<string, unknown>;
    assert.equal(pw.stdout, `username: ${String(m.username)}\npassword: ${String(m.password)}\n`);
    assert.notEqual(m.password, before.password);
    assert.equal(m.relay, null);
    assert.equal(m.fallback, null);
    const missing = await ctl('edit-mount', '/nope.ogg', '--new-password');
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr, 'radioctl: no such mount: /nope.ogg\n');
  });

  it('lists, shows and deletes; a missing mount is exit 2', async () => {
    const list = await ctl('list-mounts');
    assert.equal(list.code, 0);
    const paths = list.stdout.trim().split('\n').map((l) => l.split('\t')[0]);
    assert.deepEqual(paths, ['/json.mp3', '/live.ogg', '/live2.ogg', '/out.mp3', '/out.opus']);
    const json = JSON.parse((await ctl('--json', 'list-mounts')).stdout) as Record<string, unknown>[];
    assert.equal(json.length, 5);
    assert.ok(json.every((m) => !('password' in m)), 'list-mounts never prints passwords');
    assert.equal((await ctl('show-mount', '/nope.ogg')).code, 2);
    assert.equal((await ctl('delete-mount', '/nope.ogg')).code, 2);
    const dep = await ctl('delete-mount', '/live.ogg');
    assert.equal(dep.code, 1);
    assert.match(dep.stderr, /is the fallback or source of \/out\.mp3, \/out\.opus/);
    assert.equal((await ctl('delete-mount', '/json.mp3')).code, 0);
    assert.equal((await ctl('show-mount', '/json.mp3')).code, 2);
  });

  it('prints its tables in aligned columns on a terminal and tab-separated otherwise', () => {
    assert.deepEqual(columns([['/a.ogg', 'source', '-'], ['/longer.mp3', 'relay', 'http://x/']], false), ['/a.ogg\tsource\t-', '/longer.mp3\trelay\thttp://x/']);
    assert.deepEqual(columns([['/a.ogg', 'source', '-'], ['/longer.mp3', 'relay', 'http://x/']], true), ['/a.ogg       source  -', '/longer.mp3  relay   http://x/']);
    // A real terminal: script(1) gives radioctl a pseudo-terminal for its stdout.
    const out = execFileSync('script', ['-qec', `${join(ROOT, 'bin/radioctl')} --etcd ${etcd.url} list-mounts`, '/dev/null'], { env: { ...process.env, RADIOAI_CONFIG: '/dev/null' }, encoding: 'utf8' });
    const lines = out.replace(/\r/g, '').trim().split('\n');
    assert.ok(lines.length >= 2 && lines.every((l) => !l.includes('\t')), `no tabs on a terminal:\n${out}`);
    const second = lines.map((l) => /^\S+\s+/.exec(l)![0].length);
    assert.ok(second.every((x) => x === second[0]), `the second column starts at one offset:\n${out}`);
  });

  it('help lists every command, and help COMMAND tells one, without etcd', async () => {
    const all = await radioctl('http://127.0.0.1:1', ['help']);
    assert.equal(all.code, 0);
    for (const c of ['create-mount', 'create-transcoding-mount', 'edit-mount', 'delete-mount', 'list-mounts', 'show-mount', 'status', 'backup', 'restore', 'help']) assert.match(all.stdout, new RegExp(`^  ${c}\\b`, 'm'));
    const one = await radioctl('http://127.0.0.1:1', ['help', 'edit-mount']);
    assert.equal(one.code, 0);
    assert.match(one.stdout, /^usage: radioctl \[OPTIONS\] edit-mount PATH \[--relay URL \| --no-relay\]/);
    assert.match(one.stdout, /--new-password prints the new login/);
    const bad = await radioctl('http://127.0.0.1:1', ['help', 'nope']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'radioctl: unknown command "nope"; radioctl help lists them\n');
  });

  it('backup and restore round-trip every mount; a corrupt file changes nothing', async () => {
    const dir = tempDir('backup');
    const file = join(dir, 'mounts.json');
    assert.equal((await ctl('backup', file)).code, 0);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { mounts: { path: string; password: string }[] };
    const stdout = JSON.parse((await ctl('backup')).stdout) as { mounts: unknown[] };
    assert.deepEqual(stdout.mounts, saved.mounts);
    for (const p of ['/out.mp3', '/out.opus', '/live2.ogg', '/live.ogg']) assert.equal((await ctl('delete-mount', p)).code, 0, p);
    assert.equal((await ctl('list-mounts')).stdout, '');

    const corrupt = structuredClone(saved);
    (corrupt.mounts[1] as { path: string }).path = '/bad//path';
    writeFileSync(join(dir, 'corrupt.json'), JSON.stringify(corrupt));
    const bad = await ctl('restore', join(dir, 'corrupt.json'));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^radioctl: invalid backup: mounts\[1\]: invalid mount path "\/bad\/\/path"/);
    assert.equal((await ctl('list-mounts')).stdout, '', 'a rejected restore wrote nothing');
    for (const text of ['not json', '{"format":"radioai-mounts","version":1,"mounts":[{"path":"/a"}]}', '']) {
      const r = await radioctl(etcd.url, ['restore'], text);
      assert.equal(r.code, 1, text);
      assert.match(r.stderr, /^radioctl: invalid backup: /);
    }
    assert.equal((await ctl('list-mounts')).stdout, '');

    const ok = await radioctl(etcd.url, ['restore'], readFileSync(file, 'utf8'));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'restored 4 mounts\n');
    const again = JSON.parse((await ctl('backup')).stdout) as { mounts: unknown[] };
    assert.deepEqual(again.mounts, saved.mounts, 'every field, passwords included, came back');
  });

  it('status --json has the shape docs/radioctl.md gives', async () => {
    const r = await ctl('--json', 'status');
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { master: unknown; nodes: unknown[]; mounts: { path: string; source: boolean; listeners: number }[] };
    assert.equal(s.master, null);
    assert.deepEqual(s.nodes, []);
    assert.deepEqual(s.mounts.map((m) => [m.path, m.source, m.listeners]), [['/live.ogg', false, 0], ['/live2.ogg', false, 0], ['/out.mp3', false, 0], ['/out.opus', false, 0]]);
    const text = await ctl('status');
    assert.match(text.stdout, /^master: \(none\)\n/);
  });

  it('exits 3 within the timeout when etcd is unreachable', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const refused = await radioctl(dead, ['--timeout', '2', 'list-mounts']);
    assert.equal(refused.code, 3);
    assert.equal(refused.stderr, `radioctl: etcd not reachable at ${dead}: nothing listens at ${dead.slice(7)} (connection refused)\n`);
    // A server that accepts and never answers: the deadline, not a refusal, must end the command.
    const { createServer } = await import('node:net');
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const t0 = Date.now();
    const hung = await radioctl(`http://127.0.0.1:${port}`, ['--timeout', '1', 'create-mount', '/x.ogg']);
    const took = Date.now() - t0;
    silent.close();
    assert.equal(hung.code, 3);
    assert.match(hung.stderr, /^radioctl: etcd not reachable/);
    assert.ok(took < 5000, `took ${took} ms with --timeout 1`);
  });
});
