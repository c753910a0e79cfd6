/**
 * Configuration: precedence (flag > environment > file > default) and one
 * clear line for every invalid setting, in-process and through bin/radiod.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../src/config/load-config.ts';
import { ROOT, run, tempDir } from '../harness/components.ts';

const noDns = { defaultPublicIps: () => Promise.resolve(['192.0.2.10']) };

function configFile(text: string): string {
  const f = join(tempDir('cfg'), 'radioai');
  writeFileSync(f, text);
  return f;
}

describe('configuration', () => {
  it('takes the defaults docs/configuration.md lists', async () => {
    const c = await loadConfig(['--domain', 'radio.example.com', '--name', 'n1', '--config', configFile('')], { env: {}, ...noDns });
    assert.equal(c.httpPort, 80);
    assert.equal(c.dnsPort, 53);
    assert.equal(c.icecastPort, 8000);
    assert.equal(c.embeddedEtcdPort, 2379);
    assert.equal(c.dataDir, '/var/lib/radioai');
    assert.equal(c.etcdServer, '');
    assert.deepEqual(c.publicIps, ['192.0.2.10']);
    assert.deepEqual(c.bindAddrs, ['192.0.2.10']);
    assert.deepEqual(c.nameservers, ['n1']);
    assert.equal(c.icecastProxy, true);
    assert.equal(c.leaseTtl, 5);
    assert.equal(c.statsd, 'localhost:8125');
    assert.equal(c.metricsAddr, '127.0.0.1:9108');
    assert.equal(c.etcdCa, '/etc/radioai/etcd_ca.pem');
  });

  it('orders flag > environment > file > default', async () => {
    const file = configFile('# comment\nDOMAIN=file.example.com\nHTTP_PORT=81\nDNS_PORT="5353"\nexport ICECAST_PORT=8001\nLEASE_TTL=7\n');
    const env = { HTTP_PORT: '82', DNS_PORT: '5354' };
    const c = await loadConfig(['--config', file, '--http-port', '83'], { env, ...noDns });
    assert.equal(c.domain, 'file.example.com');
    assert.equal(c.httpPort, 83, 'flag wins over environment and file');
    assert.equal(c.dnsPort, 5354, 'environment wins over file');
    assert.equal(c.icecastPort, 8001, 'file wins over default');
    assert.equal(c.leaseTtl, 7);
    assert.equal(c.workers > 0, true);
  });

  it('reads RADIOAI_CONFIG and --flag=value forms', async () => {
    const file = configFile('DOMAIN=env-file.example.com\n');
    const c = await loadConfig(['--http-port=8080', '--enable-icecast-proxy=false', '--bandwidth-limit', '100M'], { env: { RADIOAI_CONFIG: file }, ...noDns });
    assert.equal(c.domain, 'env-file.example.com');
    assert.equal(c.httpPort, 8080);
    assert.equal(c.icecastProxy, false);
    assert.equal(c.bandwidthLimit, 100_000_000);
  });

  const invalid: [string, string[], Record<string, string>, RegExp][] = [
    ['missing domain', [], {}, /^DOMAIN \(--domain\): required/],
    ['bad domain', ['--domain', 'not a domain'], {}, /^DOMAIN \(--domain, from flag --domain\): "not a domain" is not a DNS domain name$/],
    ['bad port', ['--http-port', '70000'], {}, /^HTTP_PORT \(--http-port, from flag --http-port\): expected a whole number from 1 to 65535, got 70000$/],
    ['bad port in env', [], { DNS_PORT: 'fifty' }, /^DNS_PORT \(--dns-port, from environment\): expected a whole number/],
    ['bad ip', ['--public-ip', '10.0.0.300'], {}, /^PUBLIC_IP .*"10\.0\.0\.300" is not an IPv4 or IPv6 address$/],
    ['bad name', ['--name', 'has_underscore'], {}, /^NODE_NAME .*is not a DNS label/],
    ['bad boolean', ['--enable-icecast-proxy=maybe'], {}, /^ICECAST_PROXY .*expected true or false/],
    ['bad bandwidth', ['--bandwidth-limit', 'lots'], {}, /^BANDWIDTH_LIMIT .*expected bits per second/],
    ['bad statsd', ['--statsd', 'nohostport'], {}, /^STATSD .*expected host:port or empty/],
    ['bad lease', ['--lease-ttl', '0'], {}, /^LEASE_TTL .*from 2 to 3600/],
    ['bad workers', ['--workers', '0'], {}, /^WORKERS .*from 1 to 256/],
    ['bad etcd', ['--etcd', 'ftp://x,y'], {}, /^ETCD_SERVER .*neither an http\(s\) URL nor a host name/],
    ['bad data dir', ['--data-dir', 'relative/dir'], {}, /^DATA_DIR .*expected an absolute path/],
    ['bad nameserver', ['--nameservers', 'ns1.radio.test,bad name'], {}, /^NAMESERVERS .*is not a DNS name/],
    ['port clash', ['--http-port', '8000'], {}, /^ICECAST_PORT: port 8000 is already HTTP_PORT$/],
    ['unknown flag', ['--colour', 'blue'], {}, /^unknown option --colour$/],
    ['missing value', ['--http-port'], {}, /^--http-port needs a value$/],
  ];
  for (const [what, args, env, message] of invalid) {
    it(`refuses ${what} with one clear line`, async () => {
      const argv = what === 'missing domain' ? args : ['--domain', 'radio.test', ...args];
      await assert.rejects(loadConfig(['--config', configFile(''), ...argv], { env, ...noDns }), (err: Error & { code?: string }) => {
        assert.match(err.message, message);
        assert.ok(!err.message.includes('\n'));
        assert.match(err.code ?? '', /^RADIOAI_ERR_(CONFIG|USAGE|NO_DOMAIN)$/);
        return true;
      });
    });
  }

  it('refuses unknown keys and broken lines in the file, naming the line', async () => {
    await assert.rejects(loadConfig(['--config', configFile('DOMAIN=a.b\nCOLOUR=blue\n')], { env: {}, ...noDns }), /radioai:2: unknown setting COLOUR$/);
    await assert.rejects(loadConfig(['--config', configFile('DOMAIN a.b\n')], { env: {}, ...noDns }), /radioai:1: expected KEY=VALUE/);
    await assert.rejects(loadConfig(['--config', '/nonexistent/radioai'], { env: {}, ...noDns }), /config file \/nonexistent\/radioai: does not exist/);
  });

  it('radiod stops at start with one line naming the bad setting', async () => {
    const p = run(join(ROOT, 'bin/radiod'), ['--domain', 'radio.test', '--http-port', 'eighty'], { RADIOAI_CONFIG: '/dev/null' });
    const { code } = await p.exited;
    assert.equal(code, 2);
    assert.equal(p.output(), 'radiod: HTTP_PORT (--http-port, from flag --http-port): expected a whole number from 1 to 65535, got "eighty"\n');
  });
});
