/**
 * The listener log of a real radiod (real
 * etcd, Icecast, an ffmpeg source) with listeners of known user agents that
 * connect from chosen loopback addresses and leave; their lines must say
 * how long they stayed and what they got, believe X-Forwarded-For only from
 * a trusted proxy, and go to a new file after SIGHUP.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/net.ts';
import { createMount, startEtcd, startRadiod, tempDir, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { ffmpegSource, icecastUrl } from '../harness/stream.ts';

describe('the listener log of a node', () => {
  let etcd: Etcd;
  let node: Radiod;
  let source: Proc;
  let file = '';
  const HOST = '127.0.28.1';
  const PROXY = '127.0.28.9';

  before(async () => {
    etcd = await startEtcd();
    const dir = tempDir('access');
    file = join(dir, 'access.log');
    node = await startRadiod({ name: 'al', host: HOST, etcd: etcd.url, leaseTtl: 3, env: { ACCESS_LOG: file, TRUSTED_PROXIES: `${PROXY},10.0.0.0/8` } });
    await waitFor(async () => (await node.health()).body.icecast === 'ready', 15_000, 'Icecast ready');
    const m = await createMount(etcd.url, ['create-mount', '/live.ogg']);
    await new Promise((r) => setTimeout(r, 1500));
    source = ffmpegSource(icecastUrl(m.username, m.password, HOST, node.icecastPort, '/live.ogg'));
  });
  after(async () => {
    await source?.kill('SIGKILL');
    await node?.stop();
    await etcd?.stop();
  });

  /** A listener from `from` that stays `ms` and then leaves; resolves with the bytes it read. */
  const listen = (port: number, from: string, ms: number, headers: Record<string, string>): Promise<{ status: number; bytes: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = get({ host: HOST, port, path: '/live.ogg', localAddress: from, agent: false, headers }, (res) => {
        let bytes = 0;
        let body = '';
        res.on('data', (d: Buffer) => {
          bytes += d.length;
          if (res.statusCode !== 200) body += d.toString();
        });
        if (res.statusCode !== 200) return res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, body }));
        setTimeout(() => {
          req.destroy();
          resolve({ status: 200, bytes, body });
        }, ms);
      });
      req.on('error', reject);
    });
  const lines = (): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []);

  it('writes a line per listener with its address, user agent, seconds and bytes; X-Forwarded-For only from the trusted proxy', async (t) => {
    await waitFor(async () => {
      const probe = await listen(node.icecastPort, '127.0.28.5', 500, {});
      return probe.status === 200 && probe.bytes > 0;
    }, 20_000, 'the stream live', 200);
    const a = await listen(node.httpPort, '127.0.28.5', 3000, { 'User-Agent': 'TestPlayer/1.0', Referer: 'https://station.example/player' });
    const b = await listen(node.icecastPort, '127.0.28.6', 2000, { 'User-Agent': 'OtherPlayer/2.0 (spoof)', 'X-Forwarded-For': '198.51.100.1' });
    const c = await listen(node.icecastPort, PROXY, 1000, { 'User-Agent': 'BehindProxy/1', 'X-Forwarded-For': '203.0.113.7' });
    for (const x of [a, b, c]) assert.equal(x.status, 200, `${x.status} ${x.body}\n${lines().join('\n')}`);
    const find = (ua: string): Promise<string> => waitFor(() => lines().find((l) => l.includes(`"${ua}"`)) ?? null, 5000, `the line of ${ua}`, 100);
    const la = await find('TestPlayer/1.0');
    const lb = await find('OtherPlayer/2.0 (spoof)');
    const lc = await find('BehindProxy/1');
    t.diagnostic(la);
    t.diagnostic(lb);
    t.diagnostic(lc);
    const FORMAT = /^(\S+) al - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/live\.ogg HTTP\/1\.[01]" (\d{3}) (\d+) "([^"]*)" "([^"]*)" (\d+)$/;
    const [, addrA, statusA, bytesA, refA, , secA] = FORMAT.exec(la)!;
    assert.equal(addrA, '127.0.28.5');
    assert.equal(statusA, '200');
    assert.equal(refA, 'https://station.example/player');
    assert.ok(Math.abs(Number(secA) - 3) <= 1, `about 3 s connected, logged ${secA}`);
    // What the server wrote: what the client read, and what was still on its way when it left.
    assert.ok(Number(bytesA) >= a.bytes && Number(bytesA) - a.bytes < 256 * 1024, `bytes ${bytesA} for ${a.bytes} read`);
    const [, addrB, , , , , secB] = FORMAT.exec(lb)!;
    assert.equal(addrB, '127.0.28.6', 'X-Forwarded-For from an untrusted peer is not believed');
    assert.ok(Math.abs(Number(secB) - 2) <= 1, `about 2 s connected, logged ${secB}`);
    assert.equal(FORMAT.exec(lc)![1], '203.0.113.7', 'X-Forwarded-For from the trusted proxy names the listener');
  });

  it('goes on in a new file after SIGHUP, as after logrotate moved the old one', async () => {
    const moved = `${file}.1`;
    renameSync(file, moved);
    const before = readFileSync(moved, 'utf8');
    process.kill(node.proc.pid, 'SIGHUP');
    await waitFor(() => node.proc.output().includes('SIGHUP: listener log'), 5000, 'radiod to reopen its log');
    await listen(node.icecastPort, '127.0.28.7', 1000, { 'User-Agent': 'AfterRotate/1' });
    await waitFor(() => lines().some((l) => l.includes('"AfterRotate/1"')), 5000, 'the line in the new file', 100);
    assert.equal(readFileSync(moved, 'utf8'), before, 'nothing more in the moved file');
    assert.equal((await node.health()).status, 200, 'radiod serves on after SIGHUP');
  });
});
