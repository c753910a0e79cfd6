/**
 * Metrics and live latency: two real nodes send statsd datagrams to a UDP
 * socket of the test, which checks metric names and values after real
 * listeners, redirects, DNS queries, an Icecast crash, a worker crash and a
 * master change; GET /debug/latency shows the histograms' percentiles.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { httpGet, waitFor } from '../harness/net.ts';
import { killPid, pidFrom } from '../harness/process.ts';
import { isLoopback } from '../src/proxy/pages.ts';
import { metricName } from '../src/metrics/statsd-reporter.ts';
import { dig } from '../harness/dig.ts';
import { createMount, startEtcd, startRadiod, type Etcd, type Radiod } from '../harness/components.ts';
import { KeepSource, Listener, ffmpegSource, icecastUrl, oggPages } from '../harness/stream.ts';
import { join } from 'node:path';

describe('statsd metrics and /debug/latency', () => {
  let etcd: Etcd;
  let udp: Socket;
  let a: Radiod;
  let b: Radiod;
  let source: KeepSource;
  const lines: string[] = [];
  const listeners: Listener[] = [];

  /** Sum of the values of `name` (counters) or its last value (gauges) seen so far. */
  const seen = (name: string, kind: 'c' | 'g' | 'ms'): number | null => {
    const vals = lines.filter((l) => l.startsWith(`${name}:`) && l.endsWith(`|${kind}`)).map((l) => Number(l.slice(name.length + 1, l.lastIndexOf('|'))));
    if (vals.length === 0) return null;
    return kind === 'c' ? vals.reduce((x, y) => x + y, 0) : vals[vals.length - 1]!;
  };

  before(async () => {
    udp = createSocket('udp4');
    udp.on('message', (m) => lines.push(...m.toString().split('\n').filter(Boolean)));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const statsd = ['--statsd', `127.0.0.1:${udp.address().port}`];
    etcd = await startEtcd();
    a = await startRadiod({ name: 'ma', host: '127.0.8.1', etcd: etcd.url, leaseTtl: 3, extraArgs: statsd });
    await waitFor(async () => (await a.health()).body.role === 'master', 10_000, 'ma master');
    b = await startRadiod({ name: 'mb', host: '127.0.8.2', etcd: etcd.url, leaseTtl: 3, extraArgs: [...statsd, '--enable-icecast-proxy', 'false'], env: { RADIOAI_FAULTS: '1' } });
    const m = await createMount(etcd.url, ['create-mount', '/live.ogg']);
    source = new KeepSource(() => ffmpegSource(icecastUrl(m.username, m.password, a.host, a.icecastPort, '/live.ogg')));
    await waitFor(async () => {
      const l = new Listener(`http://${b.host}:${b.icecastPort}/live.ogg`);
      await new Promise((r) => setTimeout(r, 1500));
      if (l.status === 200 && oggPages(l.data()) >= 3) {
        listeners.push(l);
        return true;
      }
      l.close();
      return false;
    }, 30_000, 'audio through mb', 100);
  });
  after(async () => {
    for (const l of listeners) l.close();
    await source?.stop();
    await b?.stop();
    await a?.stop();
    await etcd?.stop();
    udp?.close();
  });

  it('names mounts for statsd and knows which peers are local', () => {
    assert.equal(metricName('/live.ogg'), 'live_ogg');
    assert.equal(metricName('/a/b-c~d'), 'a_b-c_d');
    for (const ok of ['127.0.0.1', '127.8.9.1', '::1', '0000:0000:0000:0000:0000:0000:0000:0001', '::ffff:127.0.0.1']) assert.ok(isLoopback(ok), ok);
    for (const no of ['10.0.0.1', '192.168.1.127', '2001:db8::1', '::ffff:10.0.0.1']) assert.ok(!isLoopback(no), no);
  });

  it('sends listeners, redirects, proxy bytes, DNS answers by rcode, restarts and master changes', async () => {
    const p = 'radioai.mb.';
    for (let i = 0; i < 5; i++) assert.equal((await httpGet(`http://${b.host}:${b.httpPort}/live.ogg`)).status, 302);
    for (let i = 0; i < 3; i++) assert.equal((await dig(b, 'stream.radio.test', 'A')).status, 'NOERROR');
    for (let i = 0; i < 2; i++) assert.equal((await dig(b, 'nope.radio.test', 'A')).status, 'NXDOMAIN');
    assert.equal((await dig(b, 'example.com', 'A')).status, 'REFUSED');
    await waitFor(() => (seen(`${p}redirects`, 'c') ?? 0) >= 5 && (seen(`${p}dns.rcode.nxdomain`, 'c') ?? 0) >= 2 && (seen(`${p}dns.rcode.refused`, 'c') ?? 0) >= 1
      && (seen(`${p}dns.rcode.noerror`, 'c') ?? 0) >= 3 && (seen(`${p}proxy.bytes`, 'c') ?? 0) > 16_000, 10_000, 'redirect, DNS and byte counters');
    assert.equal(seen(`${p}redirects`, 'c'), 5);
    assert.equal(seen(`${p}dns.rcode.nxdomain`, 'c'), 2);
    assert.equal(seen(`${p}dns.rcode.refused`, 'c'), 1);
    assert.equal(seen(`${p}listeners`, 'g'), 1);
    assert.equal(seen(`${p}mount.live_ogg.listeners`, 'g'), 1);

    // Icecast dies and is restarted; the source drops and comes back, so the hub's upstream reconnects.
    assert.ok(killPid(pidFrom(join(b.dataDir, 'icecast.pid'))));
    assert.ok(killPid(source.pid));
    await waitFor(() => (seen(`${p}restarts.icecast`, 'c') ?? 0) >= 1 && (seen(`${p}upstream.reconnects`, 'c') ?? 0) >= 1 && (seen(`${p}upstream.gap`, 'ms') ?? 0) > 0,
      30_000, 'Icecast restart and upstream reconnect');
    // A worker dies: it is restarted.
    b.proc.child.kill('SIGUSR2');
    await waitFor(() => (seen(`${p}restarts.worker`, 'c') ?? 0) >= 1, 10_000, 'worker restart');
    // The master leaves: mb becomes master and counts the change.
    assert.equal(seen(`${p}master.changes`, 'c'), null);
    await a.stop();
    await waitFor(() => seen(`${p}master.changes`, 'c') === 1, 10_000, 'master change');
    assert.equal(seen('radioai.ma.restarts.worker', 'c'), null, 'ma had no worker restart');
  });

  it('GET /debug/latency shows redirect, DNS and upstream gap percentiles to a local client', async () => {
    type Summary = { count: number; p50: number; p99: number; max: number };
    const read = async (): Promise<Record<string, Summary>> => JSON.parse((await httpGet(`http://${b.host}:${b.httpPort}/debug/latency`)).body) as Record<string, Summary>;
    // The worker that answers must have had the merged summary; every worker gets it.
    for (let i = 0; i < 3; i++) await httpGet(`http://${b.host}:${b.httpPort}/live.ogg`);
    await dig(b, 'stream.radio.test', 'A');
    const s = await waitFor(async () => {
      const r = await read();
      return r.redirect_us && r.redirect_us.count >= 1 && r.dns_answer_us!.count >= 1 ? r : null;
    }, 10_000, 'latency percentiles');
    for (const k of ['redirect_us', 'dns_answer_us']) {
      const h = s[k]!;
      assert.ok(h.p50 > 0 && h.p50 <= h.p99 && h.p99 <= h.max, `${k}: ${JSON.stringify(h)}`);
    }
    assert.ok(s.upstream_gap_ms !== undefined);
  });
});
