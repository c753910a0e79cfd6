/**
 * HTTPS_PORT on two real nodes (real etcd, Icecast, an ffmpeg source), with
 * a CA and a certificate for `radio.test` and `*.radio.test` made by openssl
 * here: curl --cacert plays on both; playlists, the status JSON and
 * redirects asked for over HTTPS name https:// URLs only; a full node sends
 * an HTTPS listener to another node by name; a new certificate is taken
 * without dropping a connected listener, and a broken one is refused while
 * the one in use stays.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, waitFor } from '../harness/net.ts';
import { curlListen } from '../harness/clients.ts';
import { createMount, startEtcd, startRadiod, tempDir, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { Listener, ffmpegSource, icecastUrl } from '../harness/stream.ts';

const openssl = (dir: string, ...args: string[]): void => {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
};

/** A CA, and a key and certificate it signed for radio.test and *.radio.test, named `name`.pem and `name`.key. */
function serverCert(dir: string, name: string): void {
  openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=radio.test');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:radio.test,DNS:*.radio.test\n');
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', 'san.ext');
}

function makePki(dir: string): void {
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=radioai test CA');
  serverCert(dir, 'first');
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `host:port` is shown. */
function presented(host: string, port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, servername: 'stream.radio.test', ca }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

function fingerprint(pemFile: string): string {
  const out = execFileSync('openssl', ['x509', '-in', pemFile, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' });
  return out.trim().split('=')[1]!;
}

/** One GET over HTTPS: its status, Location and (up to 4 kB of) body; the connection is then dropped. */
function httpsGet(host: string, port: number, path: string, ca: string): Promise<{ status: number; location: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, servername: 'stream.radio.test', ca, agent: false, headers: { host: `stream.radio.test:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      const done = (): void => {
        resolve({ status: res.statusCode ?? 0, location: String(res.headers.location ?? ''), body });
        req.destroy();
      };
      res.on('data', (d: string) => {
        body += d;
        if (body.length > 4096) done();
      });
      res.on('end', done);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS', () => {
  let etcd: Etcd;
  let a: Radiod;
  let b: Radiod;
  let source: Proc;
  const pki = tempDir('pki');
  const tls = tempDir('tls');
  const certFile = join(tls, 'fullchain.pem');
  const keyFile = join(tls, 'privkey.pem');
  let ca = '';
  const httpsPort = { a: 0, b: 0 };
  const listeners: Listener[] = [];

  /** Puts `name` in place the way a deploy hook does: each file written aside, then renamed over the old one. */
  const install = (name: string, key = readFileSync(join(pki, `${name}.key`))): void => {
    writeFileSync(`${keyFile}.new`, key);
    renameSync(`${keyFile}.new`, keyFile);
    writeFileSync(`${certFile}.new`, readFileSync(join(pki, `${name}.pem`)));
    renameSync(`${certFile}.new`, certFile);
  };

  before(async () => {
    makePki(pki);
    ca = readFileSync(join(pki, 'ca.pem'), 'utf8');
    install('first');
    etcd = await startEtcd();
    httpsPort.a = await freePort('127.0.30.1');
    httpsPort.b = await freePort('127.0.30.2');
    const tlsArgs = ['--tls-cert', certFile, '--tls-key', keyFile];
    a = await startRadiod({ name: 'a', host: '127.0.30.1', etcd: etcd.url, leaseTtl: 3, extraArgs: [...tlsArgs, '--https-port', String(httpsPort.a)] });
    b = await startRadiod({ name: 'b', host: '127.0.30.2', etcd: etcd.url, leaseTtl: 3, extraArgs: [...tlsArgs, '--https-port', String(httpsPort.b), '--max-listeners', '1'] });
    await waitFor(async () => (await a.health()).body.icecast === 'ready' && (await b.health()).body.icecast === 'ready', 20_000, 'Icecast ready on both');
    const m = await createMount(etcd.url, ['create-mount', '/live.ogg']);
    await new Promise((r) => setTimeout(r, 1500));
    source = ffmpegSource(icecastUrl(m.username, m.password, a.host, a.icecastPort, '/live.ogg'));
    await waitFor(async () => (await httpsGet(a.host, httpsPort.a, '/live.ogg', ca)).status === 200, 20_000, 'the stream over HTTPS');
  });
  after(async () => {
    for (const l of listeners) l.close();
    await source?.kill('SIGKILL');
    await b?.stop();
    await a?.stop();
    await etcd?.stop();
  });

  it('plays with curl --cacert on both nodes', async () => {
    for (const [n, port] of [[a, httpsPort.a], [b, httpsPort.b]] as const) {
      const r = await curlListen(`https://stream.radio.test:${port}/live.ogg`, { seconds: 3, curlArgs: ['--cacert', join(pki, 'ca.pem'), '--resolve', `stream.radio.test:${port}:${n.host}`] });
      assert.ok(r.ok, `${n.name}: ${r.evidence}\n${r.output}`);
      assert.ok(r.bytes > 20_000, `${n.name}: ${r.bytes} bytes in 3 s`);
    }
  });

  it('names https:// URLs in playlists and the status JSON asked for over HTTPS, and http:// over HTTP', async () => {
    const m3u = await httpsGet(a.host, httpsPort.a, '/live.ogg.m3u', ca);
    assert.equal(m3u.body, `https://stream.radio.test:${httpsPort.a}/live.ogg\n`);
    const pls = await httpsGet(a.host, httpsPort.a, '/live.ogg.pls', ca);
    assert.match(pls.body, new RegExp(`^File1=https://stream\\.radio\\.test:${httpsPort.a}/live\\.ogg$`, 'm'));
    const json = await httpsGet(a.host, httpsPort.a, '/status-json.xsl', ca);
    assert.match(json.body, new RegExp(`"listenurl":"https://stream\\.radio\\.test:${httpsPort.a}/live\\.ogg"`));
    assert.doesNotMatch(`${m3u.body}${pls.body}${json.body}`, /http:\/\//);
    const plain = await fetch(`http://${a.host}:${a.httpPort}/live.ogg.m3u`);
    assert.equal(await plain.text(), `http://stream.radio.test:${a.httpPort}/live.ogg\n`);
  });

  it('sends a listener of a full node to another node by its https:// name, which plays', async () => {
    // b takes one listener; the next one over HTTPS must go to a, and by name: the certificate names hosts, not addresses.
    const first = new Listener(`https://${b.host}:${httpsPort.b}/live.ogg`, 0, { servername: 'stream.radio.test', ca });
    listeners.push(first);
    await waitFor(() => first.bytes > 0, 10_000, 'the first listener on b');
    let last = '';
    const sent = await waitFor(async () => {
      const r = await httpsGet(b.host, httpsPort.b, '/live.ogg', ca);
      last = `${r.status} ${r.status === 200 ? '' : r.body.slice(0, 200)}`;
      return r.status === 302 ? r : undefined;
    }, 15_000, 'b full: a redirect').catch(async (err: Error) => {
      throw new Error(`${err.message}; last answer ${last}; b: ${JSON.stringify((await b.health()).body)}; first listener ${first.bytes} bytes`);
    });
    assert.equal(sent.location, `https://a.radio.test:${httpsPort.a}/live.ogg`);
    const r = await curlListen(`https://stream.radio.test:${httpsPort.b}/live.ogg`, {
      seconds: 3,
      curlArgs: ['-L', '--cacert', join(pki, 'ca.pem'), '--resolve', `stream.radio.test:${httpsPort.b}:${b.host}`, '--resolve', `a.radio.test:${httpsPort.a}:${a.host}`],
    });
    assert.ok(r.ok, `${r.evidence}\n${r.output}`);
    first.close();
  });

  it('takes a new certificate for new connections while a connected listener plays on, and keeps it over a broken one', async () => {
    const l = new Listener(`https://${a.host}:${httpsPort.a}/live.ogg`, 0, { servername: 'stream.radio.test', ca });
    listeners.push(l);
    await waitFor(() => l.bytes > 0, 10_000, 'a listener over HTTPS');
    assert.equal(await presented(a.host, httpsPort.a, ca), fingerprint(join(pki, 'first.pem')));

    serverCert(pki, 'second');
    install('second');
    const second = fingerprint(join(pki, 'second.pem'));
    await waitFor(async () => (await presented(a.host, httpsPort.a, ca)) === second, 10_000, 'the new certificate on new connections');
    await waitFor(async () => (await presented(b.host, httpsPort.b, ca)) === second, 10_000, 'the new certificate on b too');

    // A key that does not go with the certificate: refused, and the second pair stays in use.
    serverCert(pki, 'third');
    install('second', readFileSync(join(pki, 'third.key')));
    await waitFor(() => /cannot use .*key values mismatch/i.test(a.proc.output()), 10_000, 'the broken pair reported');
    // SIGHUP reads the files too, and gives the same answer.
    a.proc.child.kill('SIGHUP');
    assert.equal(await presented(a.host, httpsPort.a, ca), second);
    const r = await curlListen(`https://stream.radio.test:${httpsPort.a}/live.ogg`, { seconds: 2, curlArgs: ['--cacert', join(pki, 'ca.pem'), '--resolve', `stream.radio.test:${httpsPort.a}:${a.host}`] });
    assert.ok(r.ok, r.evidence);

    const before = l.bytes;
    await new Promise((res) => setTimeout(res, 2000));
    assert.ok(l.bytes > before + 16_000, `the listener connected before the change still gets the stream (${l.bytes - before} bytes in 2 s)`);
    assert.equal(l.ended, false);
    assert.equal(l.error, null);
    assert.equal((await a.health()).status, 200);
  });
});
