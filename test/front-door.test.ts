/**
 * The front door across the cluster, on both public ports of two nodes
 * (127.0.0.31 master, 127.0.0.32 relay, one etcd): in proxy mode a listener
 * is served by the node it asked from the moment a mount is live anywhere,
 * never redirected (a new mount, an external relay mount, a fallback
 * mount); a full node redirects to another node's same port; title updates
 * sent through either port reach listeners on the other node;
 * /status-json.xsl; CORS for browser players.
 */
import assert from 'node:assert/strict';
import { Agent, get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/net.ts';
import { createMount, httpGet, radioctl, startEtcd, startRadiod, type Creds, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { KeepSource, Listener, ffmpegMp3Source, ffmpegSource, icecastUrl, oggPages, rawExchange, startStation } from '../harness/stream.ts';

const TTL = 3;

/** The status and the time to it of a GET, without following redirects; closes once the head is in. */
async function firstAnswer(url: string): Promise<{ status: number; ms: number; location?: string }> {
  const t0 = Date.now();
  const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  const out = { status: res.status, ms: Date.now() - t0, location: res.headers.get('location') ?? undefined };
  await res.body?.cancel();
  return out;
}

/** Reads ICY metadata blocks from an HTTP/1.0 listener until `want` appears; returns the titles seen. */
async function titlesUntil(host: string, port: number, mount: string, want: string, timeoutMs: number): Promise<string[]> {
  const raw = await rawExchange(host, port, `GET ${mount} HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n`, { until: (b) => b.includes(`StreamTitle='${want}';`), timeoutMs });
  const end = raw.indexOf('\r\n\r\n');
  const metaint = Number(/icy-metaint: *(\d+)/i.exec(raw.subarray(0, end).toString())?.[1] ?? 0);
  assert.ok(metaint > 0, 'icy-metaint in the head');
  const titles: string[] = [];
  for (let off = end + 4; off + metaint < raw.length;) {
    const len = raw[off + metaint]! * 16;
    if (len > 0) titles.push(raw.subarray(off + metaint + 1, off + metaint + 1 + len).toString().replace(/\0+$/, ''));
    off += metaint + 1 + len;
  }
  return titles;
}

describe('front door across the cluster', () => {
  let etcd: Etcd;
  let m: Radiod;
  let r: Radiod;
  const nodes: Radiod[] = [];
  const procs: Proc[] = [];
  const sources: KeepSource[] = [];
  const listeners: Listener[] = [];
  const create = (...args: string[]): Promise<Creds> => createMount(etcd.url, args);
  const ports = (n: Radiod): [string, number][] => [['HTTP_PORT', n.httpPort], ['ICECAST_PORT', n.icecastPort]];

  /** Every node and port: 200 at once (never 302), and audio follows. */
  const servedEverywhere = async (t: { diagnostic: (s: string) => void }, mount: string, what: string): Promise<void> => {
    for (const n of nodes) {
      for (const [name, port] of ports(n)) {
        const a = await firstAnswer(`http://${n.host}:${port}${mount}`);
        t.diagnostic(`${what}: ${n.name} ${name} answered ${a.status} in ${a.ms} ms`);
        assert.equal(a.status, 200, `${what} on ${n.name} ${name}: ${a.status} ${a.location ?? ''}`);
        const l = new Listener(`http://${n.host}:${port}${mount}`);
        listeners.push(l);
        await waitFor(() => oggPages(l.data()) >= 3, 10_000, `audio of ${mount} from ${n.name} ${name}`);
        l.close();
      }
    }
  };

  before(async () => {
    etcd = await startEtcd('127.0.0.31');
    m = await startRadiod({ name: 'm', host: '127.0.0.31', etcd: etcd.url, leaseTtl: TTL, workers: 2 });
    await waitFor(async () => (await m.health()).body.icecast === 'ready', 15_000, 'm ready as master');
    r = await startRadiod({ name: 'r', host: '127.0.0.32', etcd: etcd.url, leaseTtl: TTL, workers: 2 });
    nodes.push(m, r);
    await waitFor(async () => (await r.health()).body.icecast === 'ready', 15_000, 'r ready');
  });
  after(async () => {
    for (const l of listeners) l.close();
    for (const s of sources) await s.stop();
    for (const p of procs) await p.kill('SIGKILL');
    for (const n of nodes) await n.stop();
    await etcd?.stop();
  });

  it('serves a new mount on every node and port as soon as its source is live on the master, never redirecting', async (t) => {
    const fresh = await create('create-mount', '/fresh.ogg');
    sources.push(new KeepSource(() => ffmpegSource(icecastUrl(fresh.username, fresh.password, m.host, m.icecastInternalPort, '/fresh.ogg'))));
    await waitFor(async () => (await fetch(`http://${m.host}:${m.icecastInternalPort}/fresh.ogg`, { signal: AbortSignal.timeout(1000) }).then(async (x) => {
      await x.body?.cancel();
      return x.status === 200;
    }).catch(() => false)), 20_000, 'the source live on the master\'s Icecast');
    await servedEverywhere(t, '/fresh.ogg', 'new mount');
  });

  it('serves an external relay mount and a fallback mount on every node and port, never redirecting', async (t) => {
    const station = await startStation();
    procs.push(station.proc, station.source('/station.ogg'));
    await waitFor(async () => (await fetch(`http://127.0.0.1:${station.port}/station.ogg`, { signal: AbortSignal.timeout(1000) }).then(async (x) => {
      await x.body?.cancel();
      return x.status === 200;
    }).catch(() => false)), 10_000, 'the station on air');
    await create('create-mount', '/ext.ogg', '--relay', `http://127.0.0.1:${station.port}/station.ogg`);
    await waitFor(async () => (await firstAnswer(`http://${r.host}:${r.httpPort}/ext.ogg`)).status === 200, 30_000, 'the relay mount on r');
    await servedEverywhere(t, '/ext.ogg', 'external relay');
    await create('create-mount', '/main.ogg', '--fallback', '/ext.ogg');
    await waitFor(async () => (await firstAnswer(`http://${r.host}:${r.httpPort}/main.ogg`)).status === 200, 30_000, 'the fallback mount on r');
    await servedEverywhere(t, '/main.ogg', 'fallback mount');
  });

  it('carries title updates sent through either port of either node to listeners on the other node', async (t) => {
    const mp3 = await create('create-mount', '/talk.mp3');
    sources.push(new KeepSource(() => ffmpegMp3Source(icecastUrl(mp3.username, mp3.password, r.host, r.httpPort, '/talk.mp3'))));
    await waitFor(async () => (await firstAnswer(`http://${m.host}:${m.httpPort}/talk.mp3`)).status === 200, 30_000, 'the MP3 source on air');
    let k = 0;
    for (const [from, to] of [[m, r], [r, m]] as const) {
      for (const [name, port] of ports(from)) {
        const title = `Song ${++k} – Ünïcode & "quotes"`;
        const user = k % 2 === 0 ? 'source' : mp3.username;
        const listening = titlesUntil(to.host, to.httpPort, '/talk.mp3', title, 15_000);
        await new Promise((res) => setTimeout(res, 500));
        const t0 = Date.now();
        const res = await fetch(`http://${from.host}:${port}/admin/metadata?mount=/talk.mp3&mode=updinfo&song=${encodeURIComponent(title)}`, {
          headers: { authorization: `Basic ${Buffer.from(`${user}:${mp3.password}`).toString('base64')}` },
        });
        assert.equal(res.status, 200, `title update through ${from.name} ${name} as ${user}`);
        const titles = await listening;
        t.diagnostic(`title through ${from.name} ${name} heard on ${to.name} after ${Date.now() - t0} ms`);
        assert.ok(titles.includes(`StreamTitle='${title}';`), titles.join(' | '));
      }
    }
    const bad = await fetch(`http://${r.host}:${r.icecastPort}/admin/metadata?mount=/talk.mp3&mode=updinfo&song=x`, { headers: { authorization: `Basic ${Buffer.from('source:wrong').toString('base64')}` } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /^Basic /);
    assert.equal((await fetch(`http://${r.host}:${r.httpPort}/admin/metadata?mount=/none.mp3&mode=updinfo&song=x`, { headers: { authorization: 'Basic c291cmNlOng=' } })).status, 404);
    // The last title is in radioctl status, as text and JSON...
    await waitFor(async () => {
      const st = await radioctl(etcd.url, ['--json', 'status']);
      const talk = (JSON.parse(st.stdout) as { mounts: { path: string; title: string }[] }).mounts.find((x) => x.path === '/talk.mp3');
      return talk?.title.startsWith('Song 4');
    }, 10_000, 'the title in radioctl status --json');
    assert.match((await radioctl(etcd.url, ['status'])).stdout, /\/talk\.mp3\tconnected\t\d+\tSong 4/);
    // ...and in the cluster's status JSON on both nodes and ports.
    for (const n of nodes) {
      for (const [, port] of ports(n)) {
        await waitFor(async () => {
          const j = JSON.parse((await httpGet(`http://${n.host}:${port}/status-json.xsl`)).body) as { icestats: { source: { listenurl: string; title: string; server_type: string; listeners: number }[] } };
          const s = j.icestats.source.find((x) => x.listenurl.endsWith('/talk.mp3'));
          return s?.title.startsWith('Song 4') === true && s.server_type === 'audio/mpeg' && s.listenurl === `http://stream.radio.test:${port}/talk.mp3`;
        }, 10_000, `the title in status-json.xsl on ${n.name}:${port}`);
      }
    }
    // An HTTP library keeps its connection alive: a title update after a short request (served by uWS)
    // goes down the same connection and is carried all the same.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const viaAgent = (path: string, headers: Record<string, string> = {}): Promise<{ status: number; reused: boolean }> => new Promise((resolve, reject) => {
      const req = get({ host: r.host, port: r.httpPort, path, agent, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      });
      req.on('error', reject);
    });
    try {
      assert.equal((await viaAgent('/status-json.xsl')).status, 200);
      const title = 'Kept alive';
      const listening = titlesUntil(m.host, m.httpPort, '/talk.mp3', title, 15_000);
      await new Promise((res) => setTimeout(res, 500));
      const kept = await viaAgent(`/admin/metadata?mount=/talk.mp3&mode=updinfo&song=${encodeURIComponent(title)}`, { authorization: `Basic ${Buffer.from(`source:${mp3.password}`).toString('base64')}` });
      assert.deepEqual(kept, { status: 200, reused: true }, 'a title update on a kept-alive connection');
      assert.ok((await listening).includes(`StreamTitle='${title}';`));
    } finally {
      agent.destroy();
    }
  });

  it('lets browser players on other origins in: CORS on streams, playlists and status JSON, and preflights', async () => {
    for (const [, port] of ports(r)) {
      const pre = await fetch(`http://${r.host}:${port}/fresh.ogg`, { method: 'OPTIONS', headers: { origin: 'http://player.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'icy-metadata' } });
      assert.ok(pre.status === 200 || pre.status === 204, `preflight ${pre.status}`);
      assert.equal(pre.headers.get('access-control-allow-origin'), '*');
      assert.match(pre.headers.get('access-control-allow-headers') ?? '', /icy-metadata/i);
      for (const path of ['/fresh.ogg', '/fresh.ogg.m3u', '/status-json.xsl']) {
        const res = await fetch(`http://${r.host}:${port}${path}`, { headers: { origin: 'http://player.example' }, signal: AbortSignal.timeout(5000) });
        assert.equal(res.headers.get('access-control-allow-origin'), '*', path);
        if (path === '/fresh.ogg') assert.match(res.headers.get('access-control-expose-headers') ?? '', /icy-name/);
        await res.body?.cancel();
      }
    }
  });

  it('redirects a full node\'s listeners to another node\'s same port, query kept', async () => {
    const f = await startRadiod({ name: 'f', host: '127.0.0.33', etcd: etcd.url, leaseTtl: TTL, workers: 1, extraArgs: ['--max-listeners', '1'] });
    nodes.push(f);
    const first = new Listener(`http://${f.host}:${f.httpPort}/fresh.ogg`);
    listeners.push(first);
    await waitFor(() => oggPages(first.data()) >= 3, 15_000, 'the first listener on f');
    await waitFor(async () => (await firstAnswer(`http://${f.host}:${f.httpPort}/fresh.ogg?token=abc`)).status === 302, 10_000, 'f to count itself full');
    for (const [name, port] of ports(f)) {
      const a = await firstAnswer(`http://${f.host}:${port}/fresh.ogg?token=abc`);
      assert.equal(a.status, 302, name);
      const target = nodes.filter((n) => n !== f).map((n) => `http://${n.host}:${name === 'HTTP_PORT' ? n.httpPort : n.icecastPort}/fresh.ogg?token=abc`);
      assert.ok(target.includes(a.location!), `${name}: ${a.location} is one of ${target.join(', ')}`);
      assert.equal((await firstAnswer(a.location!)).status, 200, 'the target serves it');
    }
  });
});
