/**
 * Secured etcd (README, "Securing etcd"): certificates made by
 * scripts/etcd-certs.sh, a real etcd started with --client-cert-auth, and
 * radioctl and radiod connecting with X.509 client authentication. Without
 * the certificate, or with one from another CA, they are refused with a line
 * that says which file is wrong.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, radioctl, startEtcd, startRadiod, tempDir, type Etcd, type Radiod } from './helpers/processes.ts';
import { waitFor } from '../harness/net.ts';

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
