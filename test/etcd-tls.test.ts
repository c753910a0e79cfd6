/**
 * Authenticated etcd (docs/cluster.md, "Procedure", and docs/security.md,
 * "Running it safely: etcd authentication"). The documented commands, run as
 * written on 127.0.24.x: OpenSSL makes the CA and the certificates, three
 * etcd members start from its /etc/default/etcd as the etcd user, a first
 * node joins with its settings and another finds etcd by name and
 * connects over TLS. Certificates from scripts/etcd-certs.sh on a lone
 * member: radioctl and radiod with the client certificate, without it,
 * with one from another CA, each refusal said in one line naming the file.
 * A host-name ETCD_SERVER is never spoken to in plain text unless
 * ETCD_ALLOW_PLAINTEXT says so.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, readFileSync } from 'node:fs';
import { get } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, radioctl, run, startEtcd, startRadiod, tempDir, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { freePortOn, waitFor } from '../harness/net.ts';
import { plaintextRefusal } from '../src/state/etcd-client.ts';

function certs(dir: string, ...args: string[]): void {
  execFileSync(join(ROOT, 'scripts/etcd-certs.sh'), [dir, ...args], { stdio: 'pipe' });
}

describe('etcd with client certificates', () => {
  const pki = tempDir('pki');
  const other = tempDir('pki-other');
  let etcd: Etcd;
  let radiod: Radiod | null = null;
  const tlsArgs = ['--etcd-ca', join(pki, 'etcd_ca.pem'), '--etcd-cert', join(pki, 'etcd_client.pem'), '--etcd-key', join(pki, 'etcd_client.key')];

  before(async () => {
    certs(pki, 'ca');
    certs(pki, 'member', 'etcd1', '127.0.0.1');
    certs(pki, 'client');
    certs(other, 'ca');
    certs(other, 'client');
    etcd = await startEtcd('127.0.0.1', { ca: join(pki, 'etcd_ca.pem'), cert: join(pki, 'etcd1.pem'), key: join(pki, 'etcd1.key') });
    assert.match(etcd.url, /^https:/);
  });
  after(async () => {
    await radiod?.stop();
    await etcd.stop();
  });

  it('radioctl with the client certificate manages mounts', async () => {
    const r = await radioctl(etcd.url, [...tlsArgs, 'create-mount', '/secure.ogg']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^username: \S+\npassword: \S+\n$/);
    const list = await radioctl(etcd.url, [...tlsArgs, 'list-mounts']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^\/secure\.ogg\t/m);
  });

  it('radioctl without a client certificate is refused, naming the missing files', async () => {
    const r = await radioctl(etcd.url, ['--etcd-ca', join(pki, 'etcd_ca.pem'), '--etcd-cert', '/nonexistent/c.pem', '--etcd-key', '/nonexistent/c.key', '--timeout', '3', 'list-mounts']);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^radioctl: etcd not reachable at https:\/\/127\.0\.0\.1:\d+: etcd at 127\.0\.0\.1:\d+ requires a client certificate: none at ETCD_CERT \(\/nonexistent\/c\.pem\) and ETCD_KEY \(\/nonexistent\/c\.key\)\n$/);
  });

  it('radioctl with a certificate from another CA is refused, naming the certificate', async () => {
    const r = await radioctl(etcd.url, ['--etcd-ca', join(pki, 'etcd_ca.pem'), '--etcd-cert', join(other, 'etcd_client.pem'), '--etcd-key', join(other, 'etcd_client.key'), '--timeout', '3', 'list-mounts']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, new RegExp(`refused the client certificate ETCD_CERT \\(${join(other, 'etcd_client.pem')}\\)`));
  });

  it('radioctl trusting another CA says the server certificate is not signed by it', async () => {
    const r = await radioctl(etcd.url, ['--etcd-ca', join(other, 'etcd_ca.pem'), '--etcd-cert', join(pki, 'etcd_client.pem'), '--etcd-key', join(pki, 'etcd_client.key'), '--timeout', '3', 'list-mounts']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, new RegExp(`server certificate at 127\\.0\\.0\\.1:\\d+ is not signed by the CA in ETCD_CA \\(${join(other, 'etcd_ca.pem')}\\)`));
  });

  it('radioctl speaking plain HTTP to the TLS port is told to use the CA', async () => {
    const plain = etcd.url.replace('https:', 'http:');
    const r = await radioctl(plain, ['--etcd-ca', '/nonexistent/ca.pem', '--timeout', '3', 'list-mounts']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /etcd at 127\.0\.0\.1:\d+ speaks TLS: put its CA certificate at ETCD_CA \(\/nonexistent\/ca\.pem, not found\)/);
  });

  it('radiod with the client certificate joins and serves; without it, it logs why', async () => {
    radiod = await startRadiod({ name: 'tls1', etcd: etcd.url, extraArgs: tlsArgs });
    const h = await radiod.health();
    assert.equal(h.status, 200);
    assert.equal(h.body.etcd, 'connected');
    await waitFor(async () => {
      const st = await radioctl(etcd.url, [...tlsArgs, '--json', 'status']);
      return st.code === 0 && (JSON.parse(st.stdout) as { master: string | null }).master === 'tls1';
    }, 15_000, 'tls1 is master');

    const refused = await startRadiod({ name: 'notls', etcd: etcd.url, readyMs: 0, extraArgs: ['--etcd-ca', join(pki, 'etcd_ca.pem'), '--etcd-cert', '/nonexistent/c.pem', '--etcd-key', '/nonexistent/c.key'] });
    try {
      await waitFor(() => /etcd: etcd at 127\.0\.0\.1:\d+ requires a client certificate/.test(refused.proc.output()), 15_000, 'radiod explains the refusal');
      const st = JSON.parse((await radioctl(etcd.url, [...tlsArgs, '--json', 'status'])).stdout) as { nodes: { name: string }[] };
      assert.deepEqual(st.nodes.map((n) => n.name), ['tls1'], 'the node without a certificate never registered');
      assert.ok(refused.proc.child.exitCode === null, 'radiod keeps running, waiting for etcd');
    } finally {
      await refused.stop();
    }
  });
});

describe('plain text to a host name found through DNS', () => {
  it('is refused unless allowed; URLs, IP addresses, localhost and TLS are taken as written', () => {
    const ca = '/etc/radioai/etcd_ca.pem';
    assert.match(plaintextRefusal('etcd.radio.test', false, false, ca)!, /^ETCD_SERVER etcd\.radio\.test is a host name found through DNS.*ETCD_CA \(\/etc\/radioai\/etcd_ca\.pem, not found\).*ETCD_ALLOW_PLAINTEXT=true/);
    assert.match(plaintextRefusal('etcd.radio.test:2379', false, false, ca)!, /^ETCD_SERVER etcd\.radio\.test:2379 /);
    for (const ok of ['', 'http://etcd.radio.test:2379', 'http://192.0.2.1:2379,http://192.0.2.2:2379', '192.0.2.1', '192.0.2.1:2379', '::1', 'localhost', 'localhost:2379', 'etcd.localhost']) {
      assert.equal(plaintextRefusal(ok, false, false, ca), null, ok);
    }
    assert.equal(plaintextRefusal('etcd.radio.test', true, false, ca), null, 'TLS');
    assert.equal(plaintextRefusal('etcd.radio.test', false, true, ca), null, 'allowed');
  });

  it('keeps the systemd unit waiting (radiod --check-config) instead of restarting in a loop', () => {
    const check = (...args: string[]) => spawnSync(join(ROOT, 'bin/radiod'), ['--check-config', '--domain', 'radio.test', '--public-ip', '127.0.24.9', '--etcd-ca', '/nonexistent/ca.pem', ...args], { env: { ...process.env, RADIOAI_CONFIG: '/dev/null' }, encoding: 'utf8' });
    const refused = check('--etcd', 'etcd.radio.test');
    assert.equal(refused.status, 1);
    assert.match(refused.stdout, /^radiod: not starting until \/dev\/null is fixed: ETCD_SERVER etcd\.radio\.test is a host name found through DNS, .*\(\/nonexistent\/ca\.pem, not found\)/);
    assert.equal(check('--etcd', 'etcd.radio.test', '--etcd-allow-plaintext').status, 0);
    assert.equal(check('--etcd', 'http://127.0.24.9:2379').status, 0);
  });
});

/** The shell blocks docs/cluster.md marks as run by this file, in order, unindented. */
function procedureBlocks(): string[] {
  const text = readFileSync(join(ROOT, 'docs', 'cluster.md'), 'utf8');
  return [...text.matchAll(/<!-- test\/etcd-tls\.test\.ts [^>]*-->\n( *)```sh\n([\s\S]*?)\n *```/g)]
    .map((m) => m[2]!.split('\n').map((l) => l.slice(m[1]!.length)).join('\n'));
}

/** KEY=VALUE lines of a settings block. */
function settings(block: string): Record<string, string> {
  return Object.fromEntries(block.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

function bash(script: string, cwd: string): void {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${script}\n--- exit ${r.status}: ${r.stderr}`);
}

/** GET /health over TLS with a client certificate. */
function tlsHealth(url: string, pki: { ca: string; cert: string; key: string }): Promise<string> {
  return new Promise((resolve) => {
    const req = get(`${url}/health`, { ca: readFileSync(pki.ca), cert: readFileSync(pki.cert), key: readFileSync(pki.key), timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(''));
  });
}

function ids(name: string, file = '/etc/passwd'): number[] | null {
  const f = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))?.split(':');
  return f ? [Number(f[2]), Number(f[3])] : null;
}

const root = process.getuid?.() === 0;

describe('the cluster procedure of docs/cluster.md: TLS and client certificates from the start', { skip: root && ids('etcd') !== null ? false : 'needs root and the etcd user (etcd-server)' }, () => {
  const HOSTS = ['127.0.24.1', '127.0.24.2', '127.0.24.3'];
  const members: Proc[] = [];
  const nodes: Radiod[] = [];
  const pki = tempDir('readme-pki');
  const radioaiEtc = tempDir('readme-etc-radioai');
  let client = 0;
  let blocks: string[] = [];
  const sub = (t: string): string => t.replaceAll('192.0.2.', '127.0.24.').replaceAll(':2379', `:${client}`);

  before(async () => {
    blocks = procedureBlocks();
    assert.equal(blocks.length, 6, 'docs/cluster.md marks six blocks: certificates, member files, /etc/default/etcd, client files, first and other nodes');
    client = await freePortOn(HOSTS);
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    for (const m of members) await m.kill('SIGKILL');
  });

  it('makes the certificates with the documented OpenSSL commands', () => {
    bash(blocks[0]!.replaceAll('/root/radioai-pki', pki), pki);
    const san = execFileSync('openssl', ['x509', '-in', join(pki, 'node2.pem'), '-noout', '-ext', 'subjectAltName,extendedKeyUsage'], { encoding: 'utf8' });
    assert.match(san, /IP Address:192\.0\.2\.2/);
    assert.match(san, /TLS Web Server Authentication, TLS Web Client Authentication/);
    for (const f of ['node1', 'node3', 'etcd_client']) execFileSync('openssl', ['verify', '-CAfile', join(pki, 'etcd_ca.pem'), join(pki, `${f}.pem`)]);
  });

  it('starts three etcd members as the etcd user from the documented files and settings', async () => {
    // The same commands with this machine's addresses: the certificates again, for 127.0.24.x. etcd
    // checks a peer's certificate against the address it connects from, which on one machine is
    // 127.0.0.1 whatever member address it dials; on separate hosts it is the member's own.
    const local = sub(blocks[0]!).replaceAll('/root/radioai-pki', pki).replace("'subjectAltName=IP:%s\\n", "'subjectAltName=IP:%s,IP:127.0.0.1\\n");
    assert.notEqual(local, sub(blocks[0]!).replaceAll('/root/radioai-pki', pki), 'the peer certificates name 127.0.0.1 too');
    bash(local, pki);
    const peer = await freePortOn(HOSTS);
    const [uid, gid] = ids('etcd')!;
    for (const [i, host] of HOSTS.entries()) {
      const name = `node${i + 1}`;
      const etc = tempDir(`readme-etc-${name}`);
      bash(blocks[1]!.replaceAll('node1', name).replaceAll('/etc/etcd', etc), pki);
      const data = tempDir(`readme-etcd-${name}`);
      chownSync(data, uid!, gid!);
      const env = Object.fromEntries(Object.entries(settings(sub(blocks[2]!).replaceAll(':2380', `:${peer}`))).map(([k, v]) => [k,
        (k === 'ETCD_INITIAL_CLUSTER' ? v : v.replaceAll('node1', name).replaceAll('127.0.24.1', host))
          .replaceAll('/etc/etcd', etc).replaceAll('/var/lib/etcd/radioai', data)]));
      members.push(run('setpriv', ['--reuid', String(uid), '--regid', String(gid), '--init-groups', '--', 'etcd', '--log-level', 'error'], env));
    }
    const auth = { ca: join(pki, 'etcd_ca.pem'), cert: join(pki, 'etcd_client.pem'), key: join(pki, 'etcd_client.key') };
    for (const host of HOSTS) {
      await waitFor(async () => (await tlsHealth(`https://${host}:${client}`, auth)).includes('"health":"true"'), 30_000, `member on ${host} healthy`, 200)
        .catch((err: unknown) => {
          throw new Error(`${(err as Error).message}\n${members.map((m) => m.output()).join('\n')}`);
        });
    }
    // No client certificate, no service.
    const bare = await new Promise<string>((resolve) => {
      const req = get(`https://${HOSTS[0]}:${client}/health`, { ca: readFileSync(auth.ca), timeout: 2000 }, (res) => resolve(String(res.statusCode)));
      req.on('error', (e) => resolve(e.message));
    });
    assert.doesNotMatch(bare, /^200$/, 'a client without a certificate is refused');
  });

  it('runs a first node with the documented settings, and another that finds etcd by name over TLS', async () => {
    const group = ids('radioai', '/etc/group') !== null ? 'radioai' : 'root';
    bash(blocks[3]!.replaceAll('/etc/radioai', radioaiEtc).replace('chgrp radioai', `chgrp ${group}`), pki);
    const key = execFileSync('stat', ['-c', '%a %U', join(radioaiEtc, 'etcd_client.key')], { encoding: 'utf8' }).trim();
    assert.equal(key, '640 root', 'the client key is root\'s, readable by its group only');
    const tls = (s: Record<string, string>): NodeJS.ProcessEnv => ({
      ETCD_CA: (s.ETCD_CA ?? '/etc/radioai/etcd_ca.pem').replace('/etc/radioai', radioaiEtc),
      ETCD_CERT: (s.ETCD_CERT ?? '/etc/radioai/etcd_client.pem').replace('/etc/radioai', radioaiEtc),
      ETCD_KEY: (s.ETCD_KEY ?? '/etc/radioai/etcd_client.key').replace('/etc/radioai', radioaiEtc),
    });
    const first = settings(sub(blocks[4]!));
    assert.match(first.ETCD_SERVER!, /^https:\/\//);
    const node1 = await startRadiod({ name: 'node1', host: HOSTS[0], domain: first.DOMAIN, etcd: first.ETCD_SERVER, workers: 1, env: { NAMESERVERS: first.NAMESERVERS, ...tls(first) } });
    nodes.push(node1);
    assert.equal((await node1.health()).body.etcd, 'connected');
    // node1 reports its own member healthy: etcd.DOMAIN names it.
    const ns = `${HOSTS[0]}:${node1.dnsPort}`;
    await waitFor(() => execFileSync('dig', ['@' + HOSTS[0], '-p', String(node1.dnsPort), `etcd.${first.DOMAIN}`, 'A', '+short'], { encoding: 'utf8' }).trim() === HOSTS[0], 15_000, 'etcd.DOMAIN names node1');

    const other = settings(sub(blocks[5]!));
    assert.equal(other.ETCD_SERVER, 'etcd.radio.example.com', 'the other nodes name etcd by the zone');
    const node4 = await startRadiod({
      name: 'node4', host: '127.0.24.4', domain: other.DOMAIN, etcd: `${other.ETCD_SERVER}:${client}`, workers: 1,
      env: { NAMESERVERS: other.NAMESERVERS, RESOLVER: ns, ...tls(other) },
    });
    nodes.push(node4);
    assert.equal((await node4.health()).body.etcd, 'connected');
    assert.match(node4.proc.output(), new RegExp(`etcd at https://127\\.0\\.24\\.1:${client}\\b`), 'it found the member by name and speaks TLS to it');
    await waitFor(async () => (await node1.health()).body.nodes === 2, 10_000, 'both nodes registered');
  });
});

describe('a host-name ETCD_SERVER over plain text', () => {
  const HOST = '127.0.24.5';
  let etcd: Etcd;
  let node5: Radiod;
  let resolver = '';
  const started: Radiod[] = [];

  before(async () => {
    etcd = await startEtcd(HOST);
    // An explicit http:// URL is the operator's own choice: taken as written.
    node5 = await startRadiod({ name: 'node5', host: HOST, etcd: etcd.url, workers: 1 });
    resolver = `${HOST}:${node5.dnsPort}`;
    await waitFor(() => execFileSync('dig', ['@' + HOST, '-p', String(node5.dnsPort), 'etcd.radio.test', 'A', '+short'], { encoding: 'utf8' }).trim() === HOST, 15_000, 'etcd.radio.test names node5');
  });
  after(async () => {
    for (const n of started) await n.stop();
    await node5?.stop();
    await etcd?.stop();
  });

  it('is refused by radiod and radioctl with one line, and exit code 1', async () => {
    const name = `etcd.radio.test:${new URL(etcd.url).port}`;
    const refused = await startRadiod({ name: 'node6', host: '127.0.24.6', etcd: name, workers: 1, readyMs: 0, env: { RESOLVER: resolver } });
    started.push(refused);
    const exit = await Promise.race([refused.proc.exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
    assert.equal(exit?.code, 1, `radiod exits 1\n${refused.proc.output()}`);
    assert.match(refused.proc.output(), new RegExp(`^ERROR radiod: ETCD_SERVER ${name.replaceAll('.', '\\.')} is a host name found through DNS, and without TLS .* or set ETCD_ALLOW_PLAINTEXT=true \\(--etcd-allow-plaintext\\) to accept plain text$`, 'm'));
    const st = JSON.parse((await radioctl(etcd.url, ['--json', 'status'])).stdout) as { nodes: { name: string }[] };
    assert.deepEqual(st.nodes.map((n) => n.name), ['node5'], 'it never registered');

    const ctl = spawnSync(join(ROOT, 'bin/radioctl'), ['--etcd', name, '--resolver', resolver, 'list-mounts'], { env: { ...process.env, RADIOAI_CONFIG: '/dev/null' }, encoding: 'utf8' });
    assert.equal(ctl.status, 1);
    assert.match(ctl.stderr, /^radioctl: ETCD_SERVER etcd\.radio\.test:\d+ is a host name found through DNS/);
  });

  it('works with ETCD_ALLOW_PLAINTEXT', async () => {
    const name = `etcd.radio.test:${new URL(etcd.url).port}`;
    const node6 = await startRadiod({ name: 'node6', host: '127.0.24.6', etcd: name, workers: 1, env: { RESOLVER: resolver, ETCD_ALLOW_PLAINTEXT: 'true' } });
    started.push(node6);
    assert.equal((await node6.health()).body.etcd, 'connected');
    assert.match(node6.proc.output(), new RegExp(`etcd at http://127\\.0\\.24\\.5:${new URL(etcd.url).port}\\b`));
    const ctl = spawnSync(join(ROOT, 'bin/radioctl'), ['--etcd', name, '--resolver', resolver, '--etcd-allow-plaintext', 'list-mounts'], { env: { ...process.env, RADIOAI_CONFIG: '/dev/null' }, encoding: 'utf8' });
    assert.equal(ctl.status, 0, ctl.stderr);
  });
});
