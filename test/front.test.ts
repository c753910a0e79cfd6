/**
 * The front-end with real clients: curl, ffmpeg and liquidsoap as sources
 * and listeners, raw sockets for HTTP/1.0, ICY metadata and split writes,
 * a thousand concurrent listeners, a listener that stops reading, and the
 * local Icecast killed under a hundred listeners. Two nodes (127.0.0.2 is
 * the master, 127.0.0.3 a relay) and a redirect-mode node share one etcd.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { get, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { alive, freePort, waitFor } from '../harness/net.ts';
import { createMount, httpGet, pidFrom, type Creds, run, startEtcd, startRadiod, tempDir, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { KeepSource, Listener, ffmpegMp3Source, ffmpegPutSource, icecastUrl, mp3Frames, oggPages, rawExchange } from '../harness/stream.ts';

const TTL = 3;
const WORKERS = 2;

describe('front-end', () => {
  let etcd: Etcd;
  let m: Radiod;
  let r: Radiod;
  const nodes: Radiod[] = [];
  const sources: KeepSource[] = [];
  const procs: Proc[] = [];
  const listeners: Listener[] = [];
  let live: Creds;
  /** r's Prometheus endpoint. */
  let rMetrics = '';
  const create = (...args: string[]): Promise<Creds> => createMount(etcd.url, args);
  const url = (n: Radiod, path: string, door = false): string => `http://${n.host}:${door ? n.icecastPort : n.httpPort}${path}`;
  const listen = (u: string): Listener => {
    const l = new Listener(u);
    listeners.push(l);
    return l;
  };
  const hear = (u: string, pages = 5, timeoutMs = 20_000): Promise<Listener> =>
    waitFor(async () => {
      const l = listen(u);
      await new Promise((res) => setTimeout(res, 1500));
      if (l.status === 200 && oggPages(l.data()) >= pages) return l;
      l.close();
      return null;
    }, timeoutMs, `Ogg pages from ${u}`, 100);

  before(async () => {
    etcd = await startEtcd();
    const extra = ['--icecast-queue-size', '65536'];
    m = await startRadiod({ name: 'm', host: '127.0.0.2', etcd: etcd.url, leaseTtl: TTL, workers: WORKERS, extraArgs: extra });
    await waitFor(async () => (await m.health()).body.icecast === 'ready', 15_000, 'm ready as master');
    rMetrics = `127.0.0.3:${await freePort('127.0.0.3')}`;
    r = await startRadiod({ name: 'r', host: '127.0.0.3', etcd: etcd.url, leaseTtl: TTL, workers: WORKERS, extraArgs: extra, metricsAddr: rMetrics });
    nodes.push(m, r);
    await waitFor(async () => (await r.health()).body.icecast === 'ready', 15_000, 'r ready');
    live = await create('create-mount', '/live.ogg');
    // A PUT source with chunked encoding on the relay node's HTTP_PORT: carried to the master.
    sources.push(new KeepSource(() => ffmpegPutSource(`http://${encodeURIComponent(live.username)}:${encodeURIComponent(live.password)}@${r.host}:${r.httpPort}/live.ogg`)));
    await hear(url(m, '/live.ogg'));
  });
  after(async () => {
    for (const l of listeners) l.close();
    for (const s of sources) await s.stop();
    for (const p of procs) await p.kill('SIGKILL');
    for (const n of nodes) await n.stop();
    await etcd?.stop();
  });

  it('serves listeners over HTTP/1.1 and HTTP/1.0 on both ports as Icecast does: HTTP/1.0 200, never chunked (curl)', async () => {
    const cases: [string, string[]][] = [];
    for (const n of [m, r]) for (const icecast of [false, true]) for (const v of ['--http1.1', '--http1.0']) cases.push([url(n, '/live.ogg', icecast), [v]]);
    for (const [u, extra] of cases) {
      const dir = tempDir('curl');
      const out = join(dir, 'out.ogg');
      const p = run('curl', ['-s', '-m', '3', '-o', out, '-D', join(dir, 'head'), '-w', '%{http_code} %{content_type} %{http_version}', ...extra, u]);
      await p.exited;
      const [code, type, version] = p.output().split(' ');
      assert.equal(code, '200', u);
      assert.match(type!, /ogg/);
      assert.equal(version, '1', `${u} ${extra[0]}: Icecast answers every listener with HTTP/1.0`);
      const head = readFileSync(join(dir, 'head'), 'latin1');
      assert.doesNotMatch(head, /transfer-encoding/i, 'never chunked');
      assert.match(head, /access-control-allow-origin: \*/i);
      const data = readFileSync(out);
      assert.ok(data.length > 24_000, `${u}: only ${data.length} bytes in 3 s`);
      assert.ok(data.subarray(0, 4).equals(Buffer.from('OggS')), 'starts on a page');
      assert.ok(oggPages(data) > 10);
    }
  });

  it('gives ffmpeg a stream it decodes for 10 s without an error', async () => {
    const p = run('ffmpeg', ['-nostdin', '-v', 'error', '-t', '10', '-i', url(r, '/live.ogg'), '-f', 'null', '-']);
    const { code } = await p.exited;
    assert.equal(code, 0);
    assert.equal(p.output(), '', 'ffmpeg reported no decoding errors');
  });

  it('carries MP3 sources from the door to the master and frames ICY metadata for HTTP/1.0 listeners', async () => {
    const mp3 = await create('create-mount', '/music.mp3');
    sources.push(new KeepSource(() => ffmpegMp3Source(icecastUrl(mp3.username, mp3.password, r.host, r.icecastPort, '/music.mp3'))));
    await waitFor(async () => {
      const res = await fetch(`http://${m.host}:${m.icecastInternalPort}/admin/metadata?mount=/music.mp3&mode=updinfo&song=${encodeURIComponent('Hello & welcome')}`, {
        headers: { authorization: `Basic ${Buffer.from(`${mp3.username}:${mp3.password}`).toString('base64')}` },
      }).catch(() => null);
      return res?.ok === true;
    }, 20_000, 'the MP3 source to be on air on the master');
    // A plain upload once taken is carried by native code (the chunked Ogg PUT on r stays in JavaScript).
    const native = await waitFor(async () => {
      const m = /^radioai_sources_native (\d+)$/m.exec((await httpGet(`http://${rMetrics}/metrics`)).body);
      return m?.[1] === '1' ? m[1] : null;
    }, 10_000, "r's door to carry the MP3 source natively").catch(async (err: Error) => {
      throw new Error(`${err.message}: ${(await httpGet(`http://${rMetrics}/metrics`)).body.split('\n').filter((l) => l.startsWith('radioai_sources')).join('; ')}`);
    });
    assert.equal(native, '1');
    const got = await waitFor(async () => {
      const raw = await rawExchange(r.host, r.icecastPort, 'GET /music.mp3 HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n', { until: (b) => b.length > 120_000, timeoutMs: 15_000 });
      return raw.includes("StreamTitle='Hello & welcome'") ? raw : null;
    }, 30_000, 'a metadata block with the title');
    const headEnd = got.indexOf('\r\n\r\n');
    const head = got.subarray(0, headEnd).toString();
    assert.match(head, /^HTTP\/1\.0 200 OK\r\n/);
    assert.match(head, /\r\nContent-Type: audio\/mpeg\r\n/i);
    assert.match(head, /\r\nicy-metaint: 16000\r\n/i);
    // Walk the framing: 16000 audio bytes, a length byte, length*16 bytes of metadata, again.
    let off = headEnd + 4;
    const audio: Buffer[] = [];
    const titles: string[] = [];
    while (off + 16_000 < got.length) {
      audio.push(got.subarray(off, off + 16_000));
      const len = got[off + 16_000]! * 16;
      if (len > 0) titles.push(got.subarray(off + 16_001, off + 16_001 + len).toString().replace(/\0+$/, ''));
      off += 16_001 + len;
    }
    assert.ok(audio.length >= 5, 'several metadata intervals');
    assert.ok(titles.includes("StreamTitle='Hello & welcome';"), `titles seen: ${titles.join(' | ')}`);
    const frames = mp3Frames(Buffer.concat(audio));
    assert.ok(frames.length > 100 && frames.every((f) => f.bitrate === 128), 'clean 128 kbit/s MP3 once the blocks are taken out');

    const plain = await rawExchange(m.host, m.httpPort, 'GET /music.mp3 HTTP/1.1\r\nHost: x\r\n\r\n', { until: (b) => b.length > 60_000, timeoutMs: 10_000 });
    assert.doesNotMatch(plain.toString('latin1'), /StreamTitle/, 'no metadata without Icy-MetaData: 1');
  });

  it('takes a liquidsoap SOURCE-method source on the Icecast-compatible port of a node that is not the master', async () => {
    const liq = await create('create-mount', '/liq.ogg');
    const dir = tempDir('liq');
    const script = join(dir, 'source.liq');
    writeFileSync(script, [
      'settings.init.allow_root.set(true)',
      'settings.log.stdout.set(true)',
      'settings.log.file.set(false)',
      `output.icecast(%vorbis, host="${r.host}", port=${r.icecastPort}, user="${liq.username}", password="${liq.password}", mount="/liq.ogg", sine())`,
      '',
    ].join('\n'));
    const p = run('liquidsoap', [script]);
    procs.push(p);
    await hear(url(m, '/liq.ogg'), 5, 30_000);
    await hear(url(r, '/liq.ogg', true), 5, 30_000);
    assert.ok(alive(p.pid));
  });

  it('reads request lines and headers that arrive a few bytes at a time', async () => {
    // The front door waits for the whole request line before it chooses who serves it, so any
    // split works on both ports, one byte at a time: streams (the door), and short requests,
    // which uWS reads from the untouched socket (an older uWS answered 505 to a request line
    // split inside its version token, uWebSockets issue 1776).
    for (const port of [m.icecastPort, m.httpPort]) {
      for (const v of ['1.0', '1.1']) {
        const req = `GET /live.ogg HTTP/${v}\r\nHost: radio.test\r\nUser-Agent: split-test\r\nIcy-MetaData: 1\r\n\r\n`;
        const got = await rawExchange(m.host, port, req, { pieces: req.length, delayMs: 5, until: (b) => oggPages(b) >= 3, timeoutMs: 10_000 });
        assert.match(got.toString('latin1', 0, 20), /^HTTP\/1\.0 200 OK/, `port ${port} HTTP/${v}`);
        assert.ok(oggPages(got) >= 3);
      }
      const health = 'GET /health HTTP/1.1\r\nHost: radio.test\r\n\r\n';
      const h = await rawExchange(m.host, port, health, { pieces: health.length, delayMs: 5, until: (b) => b.includes('"status"'), timeoutMs: 5000 });
      assert.match(h.toString('latin1'), /^HTTP\/1\.1 200 OK[\s\S]*"status":"ok"/, `split /health on port ${port}`);
    }
  });

  it('answers garbage, unknown mounts, wrong methods and playlists clearly', async () => {
    for (const port of [m.icecastPort, m.httpPort]) {
      const garbage = await rawExchange(m.host, port, '\x16\x03\x01 this is not http\r\n\r\n', { timeoutMs: 3000 });
      assert.match(garbage.toString('latin1'), /^HTTP\/1\.0 400 Bad Request\r\n[\s\S]*malformed request line\n$/, `port ${port} answers garbage with one 400`);
      const long = await rawExchange(m.host, port, `GET /${'x'.repeat(3000)} HTTP/1.1\r\n\r\n`, { timeoutMs: 3000 });
      assert.match(long.toString('latin1'), /^HTTP\/1\.0 414 /, `port ${port}: an over-long request line`);
      const big = await rawExchange(m.host, port, `GET / HTTP/1.1\r\n${'X-Pad: y\r\n'.repeat(2000)}\r\n`, { timeoutMs: 3000 });
      assert.match(big.toString('latin1'), /^HTTP\/1\.[01] 431 /, `port ${port}: an over-large head`);
    }
    assert.equal((await m.health()).status, 200);
    assert.equal((await httpGet(url(m, '/nope.ogg'))).status, 404);
    assert.equal((await httpGet(url(m, '/nope.ogg', true))).status, 404);
    const del = await new Promise<number>((resolve) => {
      const req = get(url(m, '/live.ogg'), { method: 'DELETE', agent: false }, (res: IncomingMessage) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.end();
    });
    assert.equal(del, 405);
    const pl = await httpGet(url(m, '/live.ogg.m3u'));
    assert.equal(pl.status, 200);
    assert.equal(pl.headers['content-type'], 'audio/x-mpegurl');
    assert.equal(pl.body, `http://stream.radio.test:${m.httpPort}/live.ogg\n`);
    const pls = await httpGet(url(m, '/live.ogg.pls'));
    assert.equal(pls.body, `[playlist]\nNumberOfEntries=1\nFile1=http://stream.radio.test:${m.httpPort}/live.ogg\nTitle1=/live.ogg\nLength1=-1\nVersion=2\n`);
    assert.equal((await httpGet(url(m, '/nope.ogg.m3u'))).status, 404);
    const page = await httpGet(url(m, '/'));
    assert.equal(page.status, 200);
    assert.match(page.body, /<td>\/live\.ogg|href="\/live\.ogg"/);
    assert.doesNotMatch(page.body, new RegExp(live.password), 'the status page never shows a password');
    await create('create-mount', '/silent.ogg');
    // A mount without a source: the hub looks for it briefly (the snapshot may lag a source that just went live), then 503.
    await waitFor(async () => (await httpGet(url(m, '/silent.ogg'), 10_000)).status === 503, 15_000, '503 for a mount without source');
    for (const port of [m.httpPort, m.icecastPort]) {
      const noAuth = await rawExchange(m.host, port, 'PUT /live.ogg HTTP/1.1\r\nHost: x\r\nContent-Type: application/ogg\r\n\r\nOggS', { timeoutMs: 3000 });
      assert.match(noAuth.toString(), /^HTTP\/1\.1 401 [\s\S]*WWW-Authenticate: Basic/, 'a source without credentials is asked for them');
      const wrongUser = await rawExchange(m.host, port, `SOURCE /live.ogg ICE/1.0\r\nAuthorization: Basic ${Buffer.from('admin:x').toString('base64')}\r\n\r\n`, { timeoutMs: 3000 });
      assert.match(wrongUser.toString(), /^HTTP\/1\.0 401 /);
      const notMount = await rawExchange(m.host, port, 'SOURCE /nope.ogg HTTP/1.0\r\nAuthorization: Basic c291cmNlOng=\r\n\r\n', { timeoutMs: 3000 });
      assert.match(notMount.toString(), /^HTTP\/1\.0 404 /, 'nothing reaches the master for a mount that does not exist');
      const admin = await rawExchange(m.host, port, 'GET /admin/stats HTTP/1.1\r\nAuthorization: Basic YWRtaW46eA==\r\n\r\n', { timeoutMs: 3000 });
      assert.match(admin.toString(), /^HTTP\/1\.1 404 /, 'no /admin/ path but title updates reaches an Icecast');
    }
  });

  it('redirects in redirect mode to a door that serves, never redirecting again', async () => {
    const d = await startRadiod({ name: 'd', host: '127.0.0.4', etcd: etcd.url, leaseTtl: TTL, workers: 1, extraArgs: ['--enable-icecast-proxy', 'false'] });
    nodes.push(d);
    await waitFor(async () => {
      const res = await httpGet(url(d, '/live.ogg'));
      return res.status === 302 ? res : null;
    }, 20_000, 'a redirect from d');
    const res = await httpGet(url(d, '/live.ogg'));
    const location = String(res.headers.location);
    assert.match(location, /^http:\/\/127\.0\.0\.[234]:\d+\/live\.ogg$/);
    const target = await new Promise<number>((resolve) => get(location, { agent: false }, (x) => {
      resolve(x.statusCode ?? 0);
      x.destroy();
    }));
    assert.equal(target, 200, 'the redirect target serves the stream itself');
    // With the listener log on (the default), uWS answers: a HEAD gets a head only, and the
    // answer to the next request on the connection follows it directly.
    const two = await rawExchange(d.host, d.httpPort, 'HEAD /live.ogg HTTP/1.1\r\nHost: x\r\n\r\nGET /live.ogg HTTP/1.1\r\nHost: x\r\n\r\n', {
      until: (b) => b.toString().endsWith('/live.ogg\n'), timeoutMs: 5000,
    });
    const text = two.toString();
    const headEnd = text.indexOf('\r\n\r\n');
    assert.match(text.slice(0, headEnd), /^HTTP\/1\.1 302 [\s\S]*Location: /);
    assert.match(text.slice(headEnd + 4), /^HTTP\/1\.1 302 [\s\S]*\r\n\r\nhttp:\/\/[^\n]*\/live\.ogg\n$/, 'no body after the HEAD\'s head');
    const pages = await rawExchange(d.host, d.httpPort, 'HEAD /status-json.xsl HTTP/1.1\r\nHost: x\r\n\r\nGET /status-json.xsl HTTP/1.1\r\nHost: x\r\n\r\n', {
      until: (b) => b.toString().endsWith('}}\n'), timeoutMs: 5000,
    });
    const [first, second] = pages.toString().split(/\r\n\r\n/);
    assert.match(first!, /^HTTP\/1\.1 200 [\s\S]*Content-Length: [1-9]/, 'HEAD of a page: its length, no body');
    assert.match(second!, /^HTTP\/1\.1 200 /, 'and the next request on the connection is answered');
  });

  it('fans out to 1000 listeners at full rate with at most WORKERS connections to Icecast', async (t) => {
    const N = 1000;
    const counts = new Array<number>(N).fill(0);
    const reqs = Array.from({ length: N }, (_, i) => {
      const req = get(url(m, '/live.ogg'), { agent: false }, (res) => res.on('data', (d: Buffer) => (counts[i]! += d.length)));
      req.on('error', () => undefined);
      return req;
    });
    try {
      await waitFor(() => counts.every((c) => c > 0), 30_000, 'every listener to get data');
      const before = [...counts];
      const sourceBefore = await bytesRead(m, '/live.ogg');
      const t0 = Date.now();
      await new Promise((res) => setTimeout(res, 8000));
      const secs = (Date.now() - t0) / 1000;
      const sourceBytes = (await bytesRead(m, '/live.ogg')) - sourceBefore;
      const got = counts.map((c, i) => c - before[i]!).sort((a, b) => a - b);
      t.diagnostic(`1000 listeners: min ${Math.round(got[0]! / secs)} B/s, median ${Math.round(got[N >> 1]! / secs)} B/s; the source sent ${Math.round(sourceBytes / secs)} B/s`);
      // Every listener keeps up with the source: it gets what the source sent in the same
      // window, less what may sit in flight (a partial Ogg page, one ring's worth of timing).
      // Absolute rates are for bench/: on a loaded 2-core machine ffmpeg -re may fall behind.
      const behind = got.filter((x) => x < sourceBytes - 65_536).length;
      assert.equal(behind, 0, `${behind} listeners got less than the source sent (${sourceBytes} bytes)`);
      assert.ok(sourceBytes > 0, 'the source was sending');
      // Every other node's Icecast relays the mount from this master: one connection each. A hub
      // that just reconnected may leave its old connection in Icecast's count for a moment.
      const relays = nodes.length - 1;
      let icecastListeners = -1;
      await waitFor(async () => {
        const stats = await fetch(`http://${m.host}:${m.icecastInternalPort}/admin/stats`, {
          headers: { authorization: `Basic ${Buffer.from(`admin:${adminPassword(m)}`).toString('base64')}` },
        }).then((x) => x.text());
        const block = /<source mount="\/live\.ogg">([\s\S]*?)<\/source>/.exec(stats)?.[1] ?? '';
        icecastListeners = Number(/<listeners>(\d+)<\/listeners>/.exec(block)?.[1] ?? -1);
        return icecastListeners >= 1 && icecastListeners <= WORKERS + relays;
      }, 10_000, 'Icecast to see at most WORKERS + relays listener connections', 500).catch(() => undefined);
      assert.ok(icecastListeners >= 1 && icecastListeners <= WORKERS + relays, `Icecast sees ${icecastListeners} listener connections for 1000 listeners`);
    } finally {
      for (const q of reqs) q.destroy();
    }
  });

  it('drops a listener that stops reading while the others keep their rate', async (t) => {
    const others = Array.from({ length: 5 }, () => listen(url(m, '/live.ogg')));
    // A client with a tiny receive buffer that never reads. The server's close stays queued
    // behind the unread data, so the drop is seen from the server's side of the connection.
    const stalled = run('python3', ['-c', [
      'import socket, time',
      's = socket.socket()',
      's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)',
      `s.connect(("${m.host}", ${m.httpPort}))`,
      'print("port", s.getsockname()[1], flush=True)',
      's.sendall(b"GET /live.ogg HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")',
      'time.sleep(300)',
    ].join('\n')]);
    procs.push(stalled);
    const port = Number((await waitFor(() => /port (\d+)/.exec(stalled.output()), 5000, 'the stalled client'))[1]);
    const established = (): boolean => {
      const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${m.httpPort} and dport = :${port} )`], { encoding: 'utf8' });
      return out.trim() !== '';
    };
    await waitFor(() => established(), 5000, 'the stalled listener to connect');
    const t0 = Date.now();
    const before = others.map((l) => l.bytes);
    const sourceBefore = await bytesRead(m, '/live.ogg');
    await waitFor(() => !established(), 90_000, 'the stalled listener to be dropped', 200);
    const closedAt = Date.now();
    const sourceBytes = (await bytesRead(m, '/live.ogg')) - sourceBefore;
    t.diagnostic(`stalled listener dropped after ${closedAt - t0} ms`);
    // The others got what the source sent meanwhile (less one ring's worth of timing slack).
    for (const [i, l] of others.entries()) {
      const got = l.bytes - before[i]!;
      assert.ok(got >= sourceBytes - 65_536, `listener ${i} got ${got} bytes while the source sent ${sourceBytes}`);
    }
  });

  it('keeps 100 listeners connected through a kill -9 of the local Icecast and resumes their audio', async (t) => {
    const ls = Array.from({ length: 100 }, () => listen(url(m, '/live.ogg')));
    await waitFor(() => ls.every((l) => l.bytes > 20_000), 20_000, '100 listeners playing');
    const pid = pidFrom(join(m.dataDir, 'icecast.pid'))!;
    const marks = ls.map((l) => l.bytes);
    const t0 = Date.now();
    process.kill(pid, 'SIGKILL');
    // Wait until the stream has visibly stopped and come back for every listener.
    await waitFor(() => ls.every((l, i) => l.bytes > marks[i]! + 200_000), 60_000, 'audio to resume for every listener', 100);
    const gaps = ls.map((l) => l.maxGapMs).sort((a, b) => a - b);
    t.diagnostic(`all 100 listeners had 200 kB more audio ${Date.now() - t0} ms after the kill; longest silence per listener: median ${gaps[50]} ms, max ${gaps[99]} ms`);
    assert.ok(ls.every((l) => !l.ended && l.error === null), 'every listener stayed connected');
    const restarted = pidFrom(join(m.dataDir, 'icecast.pid'));
    assert.ok(restarted !== null && restarted !== pid && alive(restarted), 'Icecast was restarted');
    const h = await m.health();
    assert.equal(h.body.icecast, 'ready');
    // A resumed Ogg stream starts with fresh header pages (a chained stream).
    const bos = (buf: Buffer): number => {
      let n = 0;
      for (let i = buf.indexOf('OggS'); i >= 0; i = buf.indexOf('OggS', i + 4)) if ((buf[i + 5]! & 2) !== 0) n++;
      return n;
    };
    assert.ok(bos(ls[0]!.data()) >= 2, 'a second chain began after the restart');
  });
});

/** Bytes the node's Icecast has read from a mount's source (or relay), from /admin/stats. */
async function bytesRead(n: Radiod, mount: string): Promise<number> {
  const xml = await fetch(`http://${n.host}:${n.icecastInternalPort}/admin/stats`, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${adminPassword(n)}`).toString('base64')}` },
  }).then((x) => x.text());
  const block = new RegExp(`<source mount="${mount.replace(/\./g, '\\.')}">([\\s\\S]*?)</source>`).exec(xml)?.[1] ?? '';
  return Number(/<total_bytes_read>(\d+)<\/total_bytes_read>/.exec(block)?.[1] ?? 0);
}

/** The admin password radiod generated for its Icecast, read from the config it wrote. */
function adminPassword(n: Radiod): string {
  return /<admin-password>([^<]*)<\/admin-password>/.exec(readFileSync(join(n.dataDir, 'icecast', 'icecast.xml'), 'utf8'))?.[1] ?? '';
}
