/**
 * Prometheus metrics: the exposition text on its own, then a real
 * Prometheus server (Debian's `prometheus`) on loopback scraping two real
 * radiods, asked through its HTTP API for the listeners and redirects the
 * test caused; `promtool check metrics` reads what radiod serves.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, waitFor } from '../harness/net.ts';
import { RunningTotals, exposition } from '../src/metrics/prometheus.ts';
import { createMount, httpGet, radioctl, run, startEtcd, startRadiod, tempDir, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { Listener, ffmpegSource, icecastUrl } from '../harness/stream.ts';

describe('the Prometheus exposition format', () => {
  it('escapes label values and help text, and writes summaries with their _sum and _count', () => {
    const text = exposition([
      { name: 'radioai_listeners', help: 'Listeners\\now', type: 'gauge', samples: [{ labels: { mount: '/a"b\\c\nd' }, value: 3 }] },
      { name: 'radioai_redirect_seconds', help: 'h', type: 'summary', samples: [{ labels: { quantile: '0.5' }, value: NaN }, { suffix: '_sum', value: 0.25 }, { suffix: '_count', value: 2 }] },
    ]);
    assert.equal(text, [
      '# HELP radioai_listeners Listeners\\\\now',
      '# TYPE radioai_listeners gauge',
      'radioai_listeners{mount="/a\\"b\\\\c\\nd"} 3',
      '# HELP radioai_redirect_seconds h',
      '# TYPE radioai_redirect_seconds summary',
      'radioai_redirect_seconds{quantile="0.5"} NaN',
      'radioai_redirect_seconds_sum 0.25',
      'radioai_redirect_seconds_count 2',
      '',
    ].join('\n'));
  });

  it('turns wrapping 32-bit counters into totals that only grow', () => {
    const t = new RunningTotals();
    assert.equal(t.add('x', 5), 5);
    assert.equal(t.add('x', 2 ** 31 - 1), 2 ** 31 - 1);
    // The word wrapped to negative: the increase is taken modulo 2^32.
    assert.equal(t.add('x', -(2 ** 31) + 9), 2 ** 31 + 9);
    assert.equal(t.add('x', -(2 ** 31) + 9), 2 ** 31 + 9);
  });
});

describe('Prometheus scraping two nodes', () => {
  let etcd: Etcd;
  const nodes: Radiod[] = [];
  const procs: Proc[] = [];
  const listeners: Listener[] = [];
  let prometheus: Proc;
  let api = '';
  const metricsAt: string[] = [];

  before(async () => {
    etcd = await startEtcd();
    for (const [name, host, env] of [['p1', '127.0.27.1', {}], ['p2', '127.0.27.2', { ICECAST_PROXY: 'false' }]] as const) {
      const addr = `${host}:${await freePort(host)}`;
      metricsAt.push(addr);
      const n = await startRadiod({ name, host, etcd: etcd.url, leaseTtl: 3, metricsAddr: addr, env });
      nodes.push(n);
      await waitFor(async () => (await n.health()).body.icecast === 'ready', 15_000, `${name} ready`);
    }
    const dir = tempDir('prometheus');
    const config = join(dir, 'prometheus.yml');
    writeFileSync(config, `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: radioai\n    static_configs:\n      - targets: [${metricsAt.map((a) => `'${a}'`).join(', ')}]\n`);
    const port = await freePort('127.0.0.1');
    api = `http://127.0.0.1:${port}`;
    prometheus = run('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn']);
    await waitFor(async () => (await httpGet(`${api}/-/ready`).catch(() => ({ status: 0 }))).status === 200, 30_000, `Prometheus ready:\n${prometheus.output()}`);
  });
  after(async () => {
    for (const l of listeners) l.close();
    for (const p of procs) await p.kill('SIGKILL');
    await prometheus?.kill('SIGTERM');
    for (const n of nodes) await n.stop();
    await etcd?.stop();
  });

  /** Prometheus's answer to an instant query: value per instance. */
  const query = async (q: string): Promise<Map<string, number>> => {
    const res = await httpGet(`${api}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = JSON.parse(res.body) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    assert.equal(body.status, 'success', res.body);
    return new Map(body.data.result.map((r) => [r.metric.instance ?? '', Number(r.value[1])]));
  };

  it("finds the listeners on each node and the redirects they caused, promtool finds nothing wrong with the text, and radioctl listeners tells the same listeners", async (t) => {
    const [p1, p2] = nodes as [Radiod, Radiod];
    const creds = await createMount(etcd.url, ['create-mount', '/live.ogg']);
    await new Promise((r) => setTimeout(r, 1500)); // the master's Icecast has the new mount's login
    procs.push(ffmpegSource(icecastUrl(creds.username, creds.password, p1.host, p1.icecastPort, '/live.ogg')));
    // Three listeners on p1's HTTP port, two on p2's Icecast-compatible port (which streams).
    const at = (n: Radiod, port: number): Listener => {
      const l = new Listener(`http://${n.host}:${port}/live.ogg`, 1 << 12);
      listeners.push(l);
      return l;
    };
    await waitFor(async () => {
      const probe = at(p1, p1.httpPort);
      await new Promise((r) => setTimeout(r, 1000));
      probe.close();
      return probe.status === 200 && probe.bytes > 0;
    }, 20_000, 'the mount live', 100);
    const ls = [at(p1, p1.httpPort), at(p1, p1.httpPort), at(p1, p1.httpPort), at(p2, p2.icecastPort), at(p2, p2.icecastPort)];
    await waitFor(() => ls.every((l) => l.status === 200 && l.bytes > 0), 20_000, 'every listener streaming', 100);
    // p2 redirects listeners on its HTTP port (ICECAST_PROXY false): four redirects.
    for (let i = 0; i < 4; i++) {
      const r = await httpGet(`http://${p2.host}:${p2.httpPort}/live.ogg`);
      assert.equal(r.status, 302, `${r.body}\n${p2.proc.output().slice(-3000)}`);
    }

    let seen = '';
    const found = await waitFor(async () => {
      const l = await query('radioai_listeners{mount="/live.ogg"}');
      const r = await query('radioai_redirects_total');
      seen = `listeners ${JSON.stringify([...l])}, redirects ${JSON.stringify([...r])}`;
      return l.get(metricsAt[0]!) === 3 && l.get(metricsAt[1]!) === 2 && r.get(metricsAt[1]!) === 4 && r.get(metricsAt[0]!) === 0 ? { l, r } : null;
    }, 20_000, 'Prometheus to have 3 and 2 listeners and 4 redirects', 250).catch(async (err: Error) => {
      const text = (await httpGet(`http://${metricsAt[0]}/metrics`)).body.split('\n').filter((l) => /^radioai_(listeners|sent|sources)/.test(l)).join('\n');
      throw new Error(`${err.message}; last seen: ${seen}\n${text}\nlisteners: ${ls.map((l) => `${l.status} ${l.bytes} ${l.ended}`).join(', ')}`);
    });
    t.diagnostic(`listeners by instance: ${JSON.stringify([...found.l])}; redirects: ${JSON.stringify([...found.r])}`);
    // Every one of them on plain TCP: served by native code.
    const native = await query('radioai_listeners_native');
    assert.equal(native.get(metricsAt[0]!), 3, `native listeners on p1: ${JSON.stringify([...native])}`);
    assert.equal(native.get(metricsAt[1]!), 2, 'native listeners on p2');
    const bytes = await query('radioai_sent_bytes_total');
    assert.ok((bytes.get(metricsAt[0]!) ?? 0) > 0, 'bytes sent on p1');
    const info = JSON.parse((await httpGet(`${api}/api/v1/query?query=radioai_node_info`)).body) as { data: { result: { metric: Record<string, string> }[] } };
    assert.deepEqual(info.data.result.map((r) => `${r.metric.node}:${r.metric.role}`).sort(), ['p1:master', 'p2:standby']);
    const dns = await query('sum(radioai_dns_answers_total)');
    assert.ok(dns.size === 1, 'DNS answers are exposed');

    for (const addr of metricsAt) {
      const text = (await httpGet(`http://${addr}/metrics`)).body;
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(check.status, 0, `promtool check metrics for ${addr}:\n${check.stdout}${check.stderr}`);
      assert.equal(`${check.stdout}${check.stderr}`.trim(), '', `promtool has remarks on ${addr}`);
      assert.match(text, /^radioai_redirect_seconds_count \d+$/m);
    }
    assert.equal((await httpGet(`http://${metricsAt[0]}/other`)).status, 404);

    // The same listeners as radioctl listeners tells them, asked through etcd.
    const table = await radioctl(etcd.url, ['listeners', '/live.ogg']);
    assert.equal(table.code, 0, table.stderr);
    assert.equal(table.stdout, 'NODE\tLISTENERS\np1\t3\np2\t2\ntotal\t5\n');
    const each = JSON.parse((await radioctl(etcd.url, ['--json', 'listeners', '/live.ogg'])).stdout) as { node: string; address: string; userAgent: string; seconds: number }[];
    assert.deepEqual(each.map((x) => x.node).sort(), ['p1', 'p1', 'p1', 'p2', 'p2']);
    assert.ok(each.every((x) => x.address.startsWith('127.') && typeof x.userAgent === 'string' && x.seconds >= 1 && x.seconds < 120), JSON.stringify(each));
    assert.equal((await radioctl(etcd.url, ['listeners', '/nope.ogg'])).code, 2);
  });
});
