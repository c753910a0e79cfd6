/**
 * The Debian package, built by `npm run package` and installed on this
 * machine with apt-get as an operator would (the test purges it at the end):
 * the files and units it puts in place, `systemd-analyze verify`, the
 * service waiting for a DOMAIN, and the installed radiod running the way
 * radiod.service runs it (user radioai, CAP_NET_BIND_SERVICE, ports 80 and
 * 53; its children without that capability) against an embedded etcd,
 * then against an etcd that requires the client certificates in
 * /etc/radioai. Needs root, as installing does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SETTINGS } from '../../src/config/settings.ts';
import { freePort, freePortPair, httpGet, waitFor } from '../../harness/net.ts';
import { ROOT, pidFrom, run, startEtcd, type Etcd, type Proc } from '../../harness/components.ts';
import { dig } from '../../harness/dig.ts';
import { KeepSource, Listener, ffmpegSource, icecastUrl, oggPages } from '../../harness/stream.ts';

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeout = 120_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const HOST = '127.0.10.1';
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const DEB = join(ROOT, 'dist', `radioai_${VERSION}_amd64.deb`);
const UNIT = '/lib/systemd/system/radiod.service';
const PATH_UNIT = '/lib/systemd/system/radiod.path';
const root = process.getuid?.() === 0;

/** `Key=value` of the installed unit, as systemd reads it. */
function unitValue(key: string, unit = UNIT): string {
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(readFileSync(unit, 'utf8'));
  assert.ok(m, `${key}= in ${unit}`);
  return m[1]!.trim();
}

/**
 * Starts the installed radiod as radiod.service would: as its User= with its
 * AmbientCapabilities=, from a settings file of our own.
 */
function asService(settings: Record<string, string>, dir: string): Proc {
  const cfg = join(dir, 'radioai.conf');
  writeFileSync(cfg, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(''));
  const user = unitValue('User');
  const caps = unitValue('AmbientCapabilities').split(/\s+/).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',');
  const [exe, ...args] = unitValue('ExecStart').split(/\s+/);
  return run('setpriv', ['--reuid', user, '--regid', user, '--init-groups', '--inh-caps', caps, '--ambient-caps', caps, '--', exe!, ...args, '--config', cfg]);
}

/** A directory radioai can write to, as /var/lib/radioai is for the service. */
function serviceDir(): string {
  const d = mkdtempSync('/tmp/radioai-pkg-');
  chmodSync(d, 0o755);
  const data = join(d, 'data');
  mkdirSync(data);
  const pw = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('radioai:'))!.split(':');
  chownSync(data, Number(pw[2]), Number(pw[3]));
  return d;
}

const CAP_NET_BIND_SERVICE = 1n << 10n;

/** Effective capabilities of a process, from /proc. */
function capEff(pid: number): bigint {
  return BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
}

/** The program a process runs now: a child is spawned through setpriv, which drops capabilities, then executes it in the same PID. */
function commOf(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

function uidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

async function stopService(p: Proc): Promise<void> {
  if (p.child.exitCode !== null) return;
  const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  await p.kill('SIGTERM');
  clearTimeout(t);
}

describe('Debian package', { skip: root ? false : 'installing a package needs root' }, () => {
  const dirs: string[] = [];
  const procs: Proc[] = [];

  before(async () => {
    const built = await sh('npm', ['run', '-s', 'package'], {}, 600_000);
    assert.equal(built.code, 0, `npm run package: ${built.stdout}${built.stderr}`);
    assert.ok(existsSync(DEB), `${DEB} built`);
    const inst = await sh('apt-get', ['install', '-y', '-q', '--no-install-recommends', DEB], { DEBIAN_FRONTEND: 'noninteractive' }, 600_000);
    assert.equal(inst.code, 0, `apt-get install: ${inst.stdout}${inst.stderr}`);
  });
  after(async () => {
    for (const p of procs) await stopService(p);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await sh('dpkg', ['--purge', 'radioai']);
  });

  it('puts radiod and radioctl on the PATH with their runtime, units, settings file and user', async () => {
    const help = await sh('radioctl', ['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^usage: radioctl /);
    assert.equal((await sh('radiod', ['--version'])).stdout, `radiod ${VERSION}\n`);
    assert.equal((await sh('/usr/lib/radioai/bin/node', ['--version'])).stdout.split('.')[0], 'v22');
    const status = (await sh('dpkg-query', ['-W', '-f=${Status} ${Depends}', 'radioai'])).stdout;
    assert.match(status, /^install ok installed /);
    for (const dep of ['icecast2', 'liquidsoap', 'etcd-server']) assert.match(status, new RegExp(`\\b${dep}\\b`));
    assert.match((await sh('getent', ['passwd', 'radioai'])).stdout, /^radioai:x:\d+:\d+:/);
    const defaults = readFileSync('/etc/default/radioai', 'utf8');
    assert.match(defaults, /^#DOMAIN=/m);
    for (const s of SETTINGS) assert.match(defaults, new RegExp(`^#${s.env}=`, 'm'), `${s.env} in /etc/default/radioai`);
    assert.match(readFileSync('/var/lib/dpkg/info/radioai.conffiles', 'utf8'), /^\/etc\/default\/radioai$/m);
    // Enabled: radiod.path watches the settings file from boot on.
    for (const u of ['radiod.path', 'radiod.service']) assert.ok(existsSync(`/etc/systemd/system/multi-user.target.wants/${u}`), `${u} enabled`);
    assert.equal(statSync('/var/lib/radioai').uid, Number((await sh('id', ['-u', 'radioai'])).stdout.trim()));
    for (const f of ['/usr/share/man/man8/radiod.8.gz', '/usr/share/man/man8/radioctl.8.gz', '/usr/share/bash-completion/completions/radioctl', '/etc/logrotate.d/radioai']) assert.ok(existsSync(f), `${f} installed`);
    assert.match(readFileSync('/var/lib/dpkg/info/radioai.conffiles', 'utf8'), /^\/etc\/logrotate\.d\/radioai$/m);
  });

  it('has units that systemd-analyze verify accepts without a warning', async () => {
    const r = await sh('systemd-analyze', ['verify', '/lib/systemd/system/radiod.service', '/lib/systemd/system/radiod.path']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(`${r.stdout}${r.stderr}`, '', 'no warnings');
    assert.equal(unitValue('Unit', PATH_UNIT), 'radiod.service');
    assert.equal(unitValue('PathChanged', PATH_UNIT), '/etc/default/radioai');
    assert.equal(unitValue('LimitNOFILE'), '1048576');
  });

  it('waits for a DOMAIN with a clear message instead of failing, then is ready to start', async () => {
    const [exe, ...args] = unitValue('ExecCondition').split(/\s+/);
    // The file as installed: every line commented out.
    const fresh = await sh(exe!, args);
    assert.equal(fresh.code, 1, 'exit 1: systemd skips the start and does not count a failure');
    assert.equal(fresh.stdout, 'radiod: waiting for DOMAIN in /etc/default/radioai; radiod starts when the file is saved with DOMAIN=your.zone\n');
    const d = serviceDir();
    dirs.push(d);
    const cfg = join(d, 'saved');
    writeFileSync(cfg, `${readFileSync('/etc/default/radioai', 'utf8')}\nDOMAIN=radio.example.com\nPUBLIC_IP=192.0.2.10\n`);
    const saved = await sh(exe!, args, { RADIOAI_CONFIG: cfg });
    assert.equal(saved.code, 0, saved.stdout);
    writeFileSync(cfg, 'DOMAIN=radio.example.com\nPUBLIC_IP=192.0.2.10\nHTTP_PORT=eighty\n');
    const broken = await sh(exe!, args, { RADIOAI_CONFIG: cfg });
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, /^radiod: not starting until .* is fixed: HTTP_PORT \(--http-port, from .*:3\): expected a whole number/);
  });

  it('runs as the service does: user radioai, ports 80 and 53, an embedded etcd; a listener hears a source', async () => {
    const d = serviceDir();
    dirs.push(d);
    const etcdPort = await freePortPair();
    const p = asService({
      DOMAIN: 'radio.test', NODE_NAME: 'pkg1', PUBLIC_IP: HOST, DATA_DIR: join(d, 'data'), EMBEDDED_ETCD_PORT: String(etcdPort),
      ICECAST_INTERNAL_PORT: String(await freePort(HOST)), STATSD: '', WORKERS: '1', LEASE_TTL: '3',
    }, d);
    procs.push(p);
    await waitFor(async () => (await httpGet(`http://${HOST}/health`, 1000)).status === 200, 30_000, 'the installed radiod healthy on port 80').catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${p.output()}`);
    });
    assert.notEqual(uidOf(p.pid), 0, 'radiod does not run as root');
    assert.match(p.output(), /DNS over UDP in batches/, 'the package carries the batched-UDP addon');
    assert.match(p.output(), /front door: short HTTP\/1\.1 requests to uWebSockets\.js/, 'the package carries the connection-peeking addon');
    const pidFile = join(d, 'data', 'icecast.pid');
    const icecastPid = await waitFor(() => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0), 15_000, 'Icecast started');
    assert.equal(uidOf(icecastPid), uidOf(p.pid), 'Icecast runs as radioai too');
    // The capability is radiod's alone: Icecast and etcd bind no port below 1024.
    assert.notEqual(capEff(p.pid) & CAP_NET_BIND_SERVICE, 0n, 'radiod holds CAP_NET_BIND_SERVICE');
    const etcdPid = pidFrom(join(d, 'data', 'etcd.pid'));
    for (const [what, pid, comm] of [['Icecast', icecastPid, 'icecast2'], ['etcd', etcdPid, 'etcd']] as const) {
      assert.ok(pid !== null, `${what} running`);
      await waitFor(() => commOf(pid) === comm, 5000, `${what} started (not setpriv any more)`);
      assert.equal(capEff(pid), 0n, `${what} holds no capability`);
    }
    const xml = statSync(join(d, 'data', 'icecast', 'icecast.xml'));
    assert.deepEqual([xml.uid, (xml.mode & 0o777).toString(8)], [uidOf(p.pid), '600'], 'icecast.xml is radioai\'s alone');
    const a = await dig({ host: HOST, dnsPort: 53 }, 'stream.radio.test', 'A', '+short');
    assert.equal(a.raw.trim(), HOST);

    const etcd = `http://127.0.0.1:${etcdPort}`;
    const created = await sh('radioctl', ['--etcd', etcd, '--json', 'create-mount', '/pkg.ogg']);
    assert.equal(created.code, 0, created.stderr);
    const creds = JSON.parse(created.stdout) as { username: string; password: string };
    const source = new KeepSource(() => ffmpegSource(icecastUrl(creds.username, creds.password, HOST, 8000, '/pkg.ogg')));
    try {
      const heard = await waitFor(async () => {
        const l = new Listener(`http://${HOST}/pkg.ogg`, 1 << 16);
        await new Promise((r) => setTimeout(r, 1500));
        l.close();
        // A listener that starts a hub gets the codec headers at once and the audio as it comes.
        return l.status === 200 && oggPages(l.data()) >= 3 && l.bytes > 10_000 ? l : null;
      }, 30_000, 'audio through the installed radiod', 100);
      assert.ok(heard.bytes > 10_000);
    } finally {
      await source.stop();
    }
    const exit = await p.kill('SIGTERM');
    assert.equal(exit.code, 0, 'SIGTERM is a clean stop');
    assert.equal(readdirSync('/proc').filter((x) => /^\d+$/.test(x)).some((x) => x === String(icecastPid)), false, 'Icecast stopped with it');
  });

  it('uses the etcd client certificates in /etc/radioai when they are there', { skip: existsSync('/etc/radioai/etcd_ca.pem') ? 'this machine has its own /etc/radioai certificates' : false }, async () => {
    const d = serviceDir();
    dirs.push(d);
    const certs = '/usr/lib/radioai/bin/etcd-certs.sh';
    const pki = join(d, 'pki');
    for (const args of [['ca'], ['member', 'etcd1', '127.0.0.1'], ['client']]) {
      const r = await sh(certs, [pki, ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    // As docs/cluster.md has the operator do: CA and client pair into /etc/radioai, readable by radioai.
    const placed = ['etcd_ca.pem', 'etcd_client.pem', 'etcd_client.key'];
    try {
      for (const f of placed) {
        writeFileSync(join('/etc/radioai', f), readFileSync(join(pki, f)), { mode: 0o640 });
        chownSync(join('/etc/radioai', f), 0, statSync('/etc/radioai').gid);
      }
      const etcd: Etcd = await startEtcd('127.0.0.1', { ca: join(pki, 'etcd_ca.pem'), cert: join(pki, 'etcd1.pem'), key: join(pki, 'etcd1.key') });
      try {
        const ctl = await sh('radioctl', ['--etcd', etcd.url, 'create-mount', '/tls.ogg']);
        assert.equal(ctl.code, 0, ctl.stderr);
        const p = asService({
          DOMAIN: 'radio.test', NODE_NAME: 'pkg2', PUBLIC_IP: HOST, DATA_DIR: join(d, 'data'), ETCD_SERVER: etcd.url,
          HTTP_PORT: String(await freePort(HOST)), ICECAST_INTERNAL_PORT: String(await freePort(HOST)), STATSD: '', WORKERS: '1', LEASE_TTL: '3',
        }, d);
        procs.push(p);
        const port = /HTTP_PORT=(\d+)/.exec(readFileSync(join(d, 'radioai.conf'), 'utf8'))![1];
        const health = await waitFor(async () => {
          const h = await httpGet(`http://${HOST}:${port}/health`, 1000);
          return h.status === 200 ? (JSON.parse(h.body) as { etcd: string; mounts: number }) : null;
        }, 30_000, 'radiod on TLS etcd healthy');
        assert.equal(health.etcd, 'connected');
        assert.equal(health.mounts, 1);
        assert.equal((await p.kill('SIGTERM')).code, 0);
      } finally {
        await etcd.stop();
      }
    } finally {
      for (const f of placed) rmSync(join('/etc/radioai', f), { force: true });
    }
  });

  it('purges cleanly', async () => {
    for (const p of procs) await stopService(p);
    const r = await sh('dpkg', ['--purge', 'radioai']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync('/usr/bin/radiod'), false);
    assert.equal(existsSync('/lib/systemd/system/radiod.service'), false);
    assert.equal(existsSync('/var/lib/radioai'), false);
  });
});
