/**
 * Least privilege. A radiod started as root runs Icecast, liquidsoap and
 * its embedded etcd as an unprivileged user (radioai, else nobody), and the
 * files holding passwords stay root's, readable by that user through its
 * group and writable by no one else. A radiod that is not root runs them as
 * itself, without the capability it was given for ports 80 and 53. Both
 * still stream. The rules behind it are tested as pure functions first.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive, freePort, freePortPair, httpGet, waitFor } from '../harness/net.ts';
import { ambientCaps, launch } from '../src/children/child-process.ts';
import { pickChildUser, type ChildUser } from '../src/children/child-user.ts';
import { canReplaceIn, canSearch, childDir, firstAncestor, readableDir, writeReadable } from '../src/children/private-files.ts';
import { icecastPrivileges } from '../src/icecast/icecast-manager.ts';
import { ROOT, createMount, pidFrom, run, startRadiod, tempDir, type Creds, type Proc, type Radiod } from '../harness/components.ts';
import { KeepSource, Listener, ffmpegSource, icecastUrl, mp3Frames, oggPages } from '../harness/stream.ts';

const root = process.getuid?.() === 0;
const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n';
const GROUP = 'root:x:0:\nnogroup:x:65534:\nradioai:x:109:\n';
const nobody: ChildUser = { name: 'nobody', group: 'nogroup', uid: 65534, gid: 65534 };

describe('who children run as, and the files they read', () => {
  it('root picks radioai when it exists, else nobody; anyone else keeps its own user', () => {
    assert.equal(pickChildUser(1000, PASSWD, GROUP), null);
    assert.deepEqual(pickChildUser(0, PASSWD, GROUP), nobody);
    assert.deepEqual(pickChildUser(0, `${PASSWD}radioai:x:106:109::/var/lib/radioai:/usr/sbin/nologin\n`, GROUP), { name: 'radioai', group: 'radioai', uid: 106, gid: 109 });
    // A radioai that is root in disguise is passed over.
    assert.deepEqual(pickChildUser(0, `${PASSWD}radioai:x:0:0::/:/bin/sh\n`, GROUP), nobody);
    assert.throws(() => pickChildUser(0, 'root:x:0:0::/root:/bin/sh\n', GROUP), { code: 'RADIOAI_ERR_CHILD_START', message: /no unprivileged user \(radioai, nobody\)/ });
  });

  it('Icecast starts as the user itself, unless its port needs root to bind', () => {
    assert.deepEqual(icecastPrivileges(null, 8001), { spawnAs: null, changeOwner: null });
    assert.deepEqual(icecastPrivileges(nobody, 8001), { spawnAs: nobody, changeOwner: null });
    assert.deepEqual(icecastPrivileges(nobody, 801), { spawnAs: null, changeOwner: nobody });
  });

  it('a child gets no ambient capability: started through setpriv only when radiod has one and keeps its user', () => {
    assert.equal(ambientCaps('Name:\tnode\nCapInh:\t0000000000000400\nCapAmb:\t0000000000000400\n'), 0x400n);
    assert.equal(ambientCaps('CapAmb:\t0000000000000000\n'), 0n);
    const o = { ambient: 0x400n, switchesUser: false, keepCapabilities: false, setpriv: '/usr/bin/setpriv' };
    assert.deepEqual(launch('icecast2', ['-c', 'x'], o), { command: '/usr/bin/setpriv', args: ['--ambient-caps', '-all', '--inh-caps', '-all', '--', 'icecast2', '-c', 'x'] });
    for (const other of [{ ambient: 0n }, { switchesUser: true }, { keepCapabilities: true }, { setpriv: null }]) {
      assert.deepEqual(launch('icecast2', ['-c', 'x'], { ...o, ...other }), { command: 'icecast2', args: ['-c', 'x'] }, JSON.stringify(other, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
    }
  });

  it('tells which directories a user can pass through or change', () => {
    const u = { ...nobody, uid: 100, gid: 200 };
    assert.equal(canSearch({ uid: 0, gid: 0, mode: 0o40755 }, u), true);
    assert.equal(canSearch({ uid: 0, gid: 0, mode: 0o40750 }, u), false);
    assert.equal(canSearch({ uid: 0, gid: 200, mode: 0o40750 }, u), true);
    assert.equal(canSearch({ uid: 100, gid: 0, mode: 0o40077 }, u), false, 'the owner bits apply to the owner');
    assert.equal(canReplaceIn({ uid: 0, gid: 0, mode: 0o40755 }, u), false);
    assert.equal(canReplaceIn({ uid: 100, gid: 100, mode: 0o40500 }, u), true, 'an owner may chmod');
    assert.equal(canReplaceIn({ uid: 0, gid: 200, mode: 0o40770 }, u), true);
    assert.equal(canReplaceIn({ uid: 0, gid: 0, mode: 0o41777 }, u), false, 'sticky like /tmp');
    assert.equal(canReplaceIn({ uid: 0, gid: 0, mode: 0o40777 }, u), true);
    const tree: Record<string, { uid: number; gid: number; mode: number }> = { '/a/b': { uid: 0, gid: 0, mode: 0o40755 }, '/a': { uid: 100, gid: 0, mode: 0o40755 }, '/': { uid: 0, gid: 0, mode: 0o40755 } };
    assert.equal(firstAncestor('/a/b', (p) => canReplaceIn(p, u), (d) => tree[d]!), '/a');
    assert.equal(firstAncestor('/a/b', (p) => !canSearch(p, u), (d) => tree[d]!), null);
  });

  it('writes a readable file without following a link left in its way', { skip: root ? false : 'changing owners needs root' }, () => {
    const d = tempDir('priv-files');
    // Directories radiod makes above its own are open to pass through, as a fresh DATA_DIR must be.
    readableDir(join(d, 'new', 'data', 'icecast'), nobody);
    assert.equal((statSync(join(d, 'new', 'data')).mode & 0o777).toString(8), '755');
    const victim = join(d, 'victim');
    writeFileSync(victim, 'keep\n');
    readableDir(join(d, 'conf'), nobody);
    const file = join(d, 'conf', 'icecast.xml');
    symlinkSync(victim, `${file}.tmp`);
    writeReadable(file, '<icecast/>\n', nobody);
    assert.equal(readFileSync(victim, 'utf8'), 'keep\n', 'the link target is untouched');
    const st = statSync(file);
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, 65534, 0o640]);
    assert.equal(readFileSync(file, 'utf8'), '<icecast/>\n');
    const dir = statSync(join(d, 'conf'));
    assert.deepEqual([dir.uid, dir.gid, dir.mode & 0o7777], [0, 65534, 0o750]);
    // A child's directory: its own, with what an earlier root-run child left in it, and no link followed.
    const data = join(d, 'etcd');
    childDir(data, null);
    writeFileSync(join(data, 'db'), 'x');
    symlinkSync(victim, join(data, 'link'));
    childDir(data, nobody, 0o700);
    assert.deepEqual([statSync(data).uid, statSync(join(data, 'db')).uid, lstatSync(join(data, 'link')).uid, statSync(victim).uid], [65534, 65534, 65534, 0]);
    symlinkSync(d, join(d, 'elsewhere'));
    assert.throws(() => childDir(join(d, 'elsewhere'), nobody), { code: 'RADIOAI_ERR_CHILD_START' });
  });
});

/** Every process below `pid`, from ps: user, pid, command name. */
function descendants(pid: number): { user: string; pid: number; comm: string }[] {
  const rows = execFileSync('ps', ['-e', '-o', 'user:32=,pid=,ppid=,comm='], { encoding: 'utf8' }).trim().split('\n').map((l) => {
    const [user, p, pp, comm] = l.trim().split(/\s+/);
    return { user: user!, pid: Number(p), ppid: Number(pp), comm: comm ?? '' };
  });
  const out: { user: string; pid: number; comm: string }[] = [];
  const walk = (parent: number): void => {
    for (const r of rows.filter((x) => x.ppid === parent)) {
      out.push({ user: r.user, pid: r.pid, comm: r.comm });
      walk(r.pid);
    }
  };
  walk(pid);
  return out;
}

/** Uid (real, effective, saved, fs), supplementary groups and effective capabilities of a process. */
function creds(pid: number): { uids: number[]; groups: string; capEff: bigint } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    uids: /^Uid:\s+(.*)$/m.exec(s)![1]!.trim().split(/\s+/).map(Number),
    groups: /^Groups:[ \t]*(.*)$/m.exec(s)![1]!.trim(),
    capEff: BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(s)![1]}`),
  };
}

/** Runs `test FLAG file` as `user` (its own group, no others): may it read (-r) or write (-w) the file? */
function may(user: ChildUser, flag: '-r' | '-w', file: string): boolean {
  return spawnSync('setpriv', ['--reuid', String(user.uid), '--regid', String(user.gid), '--clear-groups', '--', 'test', flag, file]).status === 0;
}

function userOf(name: string): ChildUser | null {
  const f = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))?.split(':');
  return f ? { name, group: '', uid: Number(f[2]), gid: Number(f[3]) } : null;
}

async function hearMp3(url: string): Promise<number> {
  return waitFor(async () => {
    const l = new Listener(url, 1 << 16);
    await new Promise((r) => setTimeout(r, 2000));
    l.close();
    const n = mp3Frames(l.data()).length;
    return l.status === 200 && n >= 20 ? n : null;
  }, 45_000, `MP3 frames from ${url}`, 200);
}

async function hearOgg(url: string): Promise<number> {
  return waitFor(async () => {
    const l = new Listener(url, 1 << 16);
    await new Promise((r) => setTimeout(r, 1500));
    l.close();
    const n = oggPages(l.data());
    return l.status === 200 && n >= 3 ? n : null;
  }, 30_000, `Ogg pages from ${url}`, 200);
}

describe('radiod started as root', { skip: root ? false : 'needs root' }, () => {
  const HOST = '127.0.24.1';
  const child = userOf('radioai') ?? userOf('nobody')!;
  let node: Radiod;
  let etcdUrl = '';
  let source: KeepSource | null = null;

  before(async () => {
    node = await startRadiod({ name: 'priv1', host: HOST, workers: 1 });
    await waitFor(async () => (await node.health()).body.icecast === 'ready', 20_000, 'Icecast ready');
    etcdUrl = `http://127.0.0.1:${/embedded etcd running \(pid \d+\) on 127\.0\.0\.1:(\d+)/.exec(node.proc.output())![1]}`;
    const live: Creds = await createMount(etcdUrl, ['create-mount', '/live.ogg']);
    source = new KeepSource(() => ffmpegSource(icecastUrl(live.username, live.password, HOST, node.icecastPort, '/live.ogg')));
    await createMount(etcdUrl, ['create-transcoding-mount', '/live.mp3', '--source', '/live.ogg', '--codec', 'mp3', '--bitrate', '64']);
  });
  after(async () => {
    await source?.stop();
    await node?.stop();
  });

  it('runs Icecast, liquidsoap and etcd as an unprivileged user, and still streams', async () => {
    await hearOgg(`http://${HOST}:${node.icecastPort}/live.ogg`);
    const frames = await hearMp3(`http://${HOST}:${node.icecastPort}/live.mp3`);
    const kids = await waitFor(() => {
      const k = descendants(node.proc.pid);
      return ['icecast2', 'liquidsoap', 'etcd'].every((c) => k.some((x) => x.comm === c)) ? k : null;
    }, 15_000, 'Icecast, liquidsoap and etcd under radiod');
    console.log(`# privilege: radiod (root) pid ${node.proc.pid}; children ${kids.map((k) => `${k.comm}:${k.user}`).join(' ')}; ${frames} MP3 frames transcoded`);
    assert.deepEqual(kids.filter((k) => k.user === 'root'), [], 'no child runs as root');
    for (const k of kids) {
      const c = creds(k.pid);
      assert.deepEqual(c.uids, [child.uid, child.uid, child.uid, child.uid], `${k.comm}: every uid is ${child.name}'s`);
      assert.equal(c.groups, '', `${k.comm}: no supplementary group (root's would open root-group files)`);
      assert.equal(c.capEff, 0n, `${k.comm}: no capability`);
    }
  });

  it('keeps the files holding passwords root\'s: readable by the child\'s user, not writable by it', () => {
    const dir = join(node.dataDir, 'icecast');
    const liq = join(node.dataDir, 'liquidsoap');
    const script = join(liq, readdirSync(liq).find((f) => f.endsWith('.liq'))!);
    for (const file of [join(dir, 'icecast.xml'), script]) {
      const st = statSync(file);
      assert.deepEqual([st.uid, st.gid, (st.mode & 0o777).toString(8)], [0, child.gid, '640'], `${file}: root:${child.name}'s group, 0640`);
      assert.equal(may(child, '-r', file), true, `${child.name} reads ${file}`);
      assert.equal(may(child, '-w', file), false, `${child.name} cannot write ${file}`);
      // Nor replace it: the directory is root's.
      assert.equal(may(child, '-w', join(file, '..')), false, `${child.name} cannot write in ${join(file, '..')}`);
    }
    assert.match(readFileSync(join(dir, 'icecast.xml'), 'utf8'), /<source-password>/);
    assert.doesNotMatch(readFileSync(join(dir, 'icecast.xml'), 'utf8'), /<changeowner>/, 'Icecast is started unprivileged, not asked to drop root');
    // What the children write is theirs.
    for (const d of [join(dir, 'log'), join(node.dataDir, 'etcd')]) assert.equal(statSync(d).uid, child.uid, `${d} belongs to ${child.name}`);
  });
});

describe('radiod started unprivileged, with the capability for low ports', { skip: root && userOf('radioai') !== null ? false : 'needs root and the radioai user' }, () => {
  const HOST = '127.0.24.2';
  const radioai = userOf('radioai')!;
  let proc: Proc | null = null;
  let dataDir = '';

  after(async () => {
    if (proc && alive(proc.pid)) {
      const t = setTimeout(() => proc!.child.kill('SIGKILL'), 10_000);
      await proc.kill('SIGTERM');
      clearTimeout(t);
    }
    for (const f of ['etcd.pid', 'icecast.pid']) {
      const pid = pidFrom(join(dataDir, f));
      if (pid !== null && alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('runs its children as itself, without that capability, and serves', async () => {
    const d = tempDir('priv-user');
    chmodSync(d, 0o755);
    dataDir = join(d, 'data');
    execFileSync('install', ['-d', '-o', String(radioai.uid), '-g', String(radioai.gid), '-m', '0750', dataDir]);
    const [http, icecast, internal, dns] = [await freePort(HOST), await freePort(HOST), await freePort(HOST), await freePort(HOST)];
    const etcdPort = await freePortPair();
    proc = run('setpriv', [
      '--reuid', String(radioai.uid), '--regid', String(radioai.gid), '--init-groups',
      '--inh-caps', '+net_bind_service', '--ambient-caps', '+net_bind_service', '--',
      join(ROOT, 'bin/radiod'), '--domain', 'radio.test', '--name', 'priv2', '--public-ip', HOST, '--workers', '1', '--statsd', '',
      '--http-port', String(http), '--icecast-port', String(icecast), '--icecast-internal-port', String(internal), '--dns-port', String(dns),
      '--embedded-etcd-port', String(etcdPort), '--data-dir', dataDir,
    ], { RADIOAI_CONFIG: '/dev/null', HOME: dataDir });
    await waitFor(async () => {
      const h = await httpGet(`http://${HOST}:${http}/health`, 1000).catch(() => null);
      return h?.status === 200 && (JSON.parse(h.body) as { icecast?: string }).icecast === 'ready';
    }, 30_000, 'the unprivileged radiod healthy with Icecast').catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${proc!.output()}`);
    });
    const own = creds(proc.pid);
    assert.equal(own.uids[0], radioai.uid);
    assert.notEqual(own.capEff & (1n << 10n), 0n, 'radiod holds CAP_NET_BIND_SERVICE');
    const kids = descendants(proc.pid);
    assert.deepEqual(kids.map((k) => k.comm).sort(), ['etcd', 'icecast2']);
    for (const k of kids) {
      const c = creds(k.pid);
      assert.equal(c.uids[1], radioai.uid, `${k.comm} runs as radioai, as radiod does`);
      assert.equal(c.capEff, 0n, `${k.comm} holds no capability`);
    }
    const xml = statSync(join(dataDir, 'icecast', 'icecast.xml'));
    assert.deepEqual([xml.uid, (xml.mode & 0o777).toString(8)], [radioai.uid, '600'], 'the configuration is radiod\'s alone');
    assert.ok(existsSync(join(dataDir, 'etcd', 'member')), 'etcd wrote its data');
  });
});
