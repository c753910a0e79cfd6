/**
 * The live status page: its parts on their own (the plot, the ring, roles,
 * escaping), then two real nodes with an Ogg and an MP3 mount and headless
 * Chromium (Debian's chromium-headless-shell) on the page: it shows the
 * titles, the listeners per node and the roles, follows a new title and new
 * listeners without a reload, shows no password, and its play buttons play
 * both mounts.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/net.ts';
import { ListenerHistory, buildLiveStatus } from '../src/metrics/listener-history.ts';
import { liveFromSnapshot, type LiveStatus } from '../src/ipc/live-status.ts';
import type { Snapshot } from '../src/ipc/snapshot.ts';
import { NO_STREAM_INFO } from '../src/ipc/snapshot.ts';
import { plotSvg } from '../src/proxy/plot.ts';
import { PAGE_HEADERS, liveFragments, statusPage } from '../src/proxy/status-page.ts';
import { ffmpegIcecastSource, inBrowser, type BrowserPage } from './helpers/clients.ts';
import { createMount, startEtcd, startRadiod, tempDir, type Creds, type Etcd, type Proc, type Radiod } from './helpers/processes.ts';
import { Listener } from './helpers/stream.ts';

function snap(): Snapshot {
  const node = (name: string, over = {}) => ({
    slot: 0, name, addresses: ['10.0.0.1'], httpPort: 80, dnsPort: 53, icecastPort: 8000, icecastInternalPort: 8001, httpsPort: 0,
    alive: true, master: name === 'a', icecastReady: true, etcdHealthy: true, proxy: true, listeners: 3, bandwidthKbps: 384, maxListeners: 0, bandwidthLimitKbps: 0, ...over,
  });
  return {
    seq: 1, contentVersion: 1, etcdConnected: true, stateLoaded: true, draining: false, outOfService: false, etcdSeenAt: 0, self: 'a', master: 'a', dropped: 0, zoneSerial: 1,
    nodes: [node('a'), node('b'), node('c', { icecastReady: false })],
    mounts: [{
      slot: 0, path: '/live.ogg', relay: false, transcoded: false, fallbackPath: null, sourceConnected: true, listeners: 5, readyOn: ['a'],
      info: { ...NO_STREAM_INFO, title: '<script>alert(1)</script> & "Hits"', name: 'Radio <b>' }, credential: 'ab', kickedAt: 0,
    }],
    credentialSalt: '00',
  };
}

describe('status page parts', () => {
  it('plot the last hour from the right, scaled to the largest count', () => {
    const svg = plotSvg([0, 2, 4], 30);
    const pts = /<polyline class="line" points="([^"]+)"/.exec(svg)![1]!.split(' ').map((p) => p.split(',').map(Number));
    assert.equal(pts.length, 3);
    assert.equal(pts.at(-1)![0], 360, 'now is at the right edge');
    assert.equal(pts.at(-1)![1], 14, 'the largest count reaches the top');
    assert.equal(pts[0]![1], 72, 'zero lies on the axis');
    assert.match(svg, />4 max</);
    assert.match(svg, />last 60 min</);
    assert.doesNotMatch(plotSvg([], 30), /polyline/);
    assert.equal(/<polyline class="line" points="([^"]+)"/.exec(plotSvg(Array.from({ length: 121 }, (_, i) => i), 30))![1]!.split(' ')[0], '0,72');
  });

  it('keep an hour of samples per mount, and forget mounts that are gone', () => {
    const h = new ListenerHistory(3);
    for (let i = 0; i < 5; i++) h.sample([{ path: '/a', listeners: i }, ...(i < 2 ? [{ path: '/b', listeners: 9 }] : [])]);
    assert.deepEqual(h.series('/a'), [2, 3, 4]);
    assert.deepEqual(h.series('/b'), []);
  });

  it('name master, standby and relays from the election, and listeners per node', () => {
    const h = new ListenerHistory();
    h.sample([{ path: '/live.ogg', listeners: 1 }]);
    const live = buildLiveStatus(snap(), ['a', 'c', 'b'], (n) => ({ a: 2, b: 0, c: 3 })[n] ?? 0, h, 7);
    assert.deepEqual(live.nodes.map((n) => [n.name, n.role, n.health]), [['a', 'master', 'serving'], ['b', 'relay', 'serving'], ['c', 'standby', 'icecast down']]);
    assert.deepEqual(live.mounts[0]!.perNode, [['a', 2], ['c', 3]]);
    assert.deepEqual(live.mounts[0]!.history, [1, 5], 'the last point is now');
  });

  it('escape what sources send, and allow only their own script and style', () => {
    const live: LiveStatus = liveFromSnapshot(snap());
    const page = statusPage(live, 'radio.test', 'a');
    assert.doesNotMatch(page, /<script>alert/);
    assert.match(page, /&lt;script&gt;alert\(1\)&lt;\/script&gt; &amp; &quot;Hits&quot;/);
    assert.match(page, /<audio controls preload="none" src="\/live\.ogg"><\/audio>/);
    assert.doesNotMatch(liveFragments(live, 'radio.test', 'a'), /<script>alert/);
    const csp = PAGE_HEADERS.find(([k]) => k === 'Content-Security-Policy')![1];
    assert.match(csp, /default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+';/);
    assert.doesNotMatch(page, /<(?:script|link|img)[^>]+(?:src|href)=/i, 'nothing loaded from elsewhere');
  });
});

describe('the status page in a browser', () => {
  let etcd: Etcd;
  let a: Radiod;
  let b: Radiod;
  const sources: Proc[] = [];
  const listeners: Listener[] = [];
  let ogg: Creds;
  let mp3: Creds;
  const dir = tempDir('status-page');

  before(async () => {
    etcd = await startEtcd();
    a = await startRadiod({ name: 'a', host: '127.0.31.1', etcd: etcd.url, leaseTtl: 3 });
    b = await startRadiod({ name: 'b', host: '127.0.31.2', etcd: etcd.url, leaseTtl: 3 });
    await waitFor(async () => (await a.health()).body.icecast === 'ready' && (await b.health()).body.icecast === 'ready', 20_000, 'Icecast ready on both');
    ogg = await createMount(etcd.url, ['create-mount', '/live.ogg']);
    mp3 = await createMount(etcd.url, ['create-mount', '/live.mp3']);
    await new Promise((r) => setTimeout(r, 1500));
    sources.push(ffmpegIcecastSource({ host: a.host, port: a.icecastPort, mount: '/live.ogg', user: ogg.username, password: ogg.password, format: 'ogg', title: 'Morning Show' }));
    sources.push(ffmpegIcecastSource({ host: a.host, port: a.icecastPort, mount: '/live.mp3', user: mp3.username, password: mp3.password, format: 'mp3' }));
    await waitFor(async () => {
      const r = await fetch(`http://${a.host}:${a.httpPort}/status-json.xsl`);
      const j = (await r.json()) as { icestats: { source: { listenurl: string }[] } };
      return j.icestats.source.length === 2;
    }, 20_000, 'both mounts live');
  });
  after(async () => {
    for (const l of listeners) l.close();
    for (const s of sources) await s.kill('SIGKILL');
    await b?.stop();
    await a?.stop();
    await etcd?.stop();
  });

  /** The text of a mount's section on the page. */
  const section = (page: BrowserPage, path: string): Promise<string> =>
    page.evaluate(`document.querySelector('section[data-path="${path}"] .live')?.innerText ?? ''`) as Promise<string>;

  /** Plays a mount's <audio> as a click would, and waits for currentTime to pass 2 s. */
  async function plays(page: BrowserPage, path: string): Promise<number> {
    const audio = `document.querySelector('section[data-path="${path}"] audio')`;
    const started = await page.evaluate(`${audio}.play().then(() => 'playing', (e) => e.name + ': ' + e.message)`, true);
    assert.equal(started, 'playing', `${path}: play()`);
    const t = await waitFor(async () => {
      const v = Number(await page.evaluate(`${audio}.currentTime`));
      return v >= 2 ? v : undefined;
    }, 20_000, `${path} playing 2 s`, 250).catch(async (err: Error) => {
      throw new Error(`${err.message}; audio: ${String(await page.evaluate(`JSON.stringify({ t: ${audio}.currentTime, e: ${audio}.error && ${audio}.error.message, rs: ${audio}.readyState })`))}`);
    });
    return t;
  }

  it('shows titles, listeners per node and roles, follows changes without a reload, shows no password, and plays Ogg and MP3', async (t) => {
    const shot = join(dir, 'status-page.png');
    await inBrowser(`http://${a.host}:${a.httpPort}/`, async (page) => {
      await waitFor(async () => (await section(page, '/live.ogg')).includes('Morning Show'), 15_000, 'the Ogg title on the page');
      await page.evaluate('window.notReloaded = true');

      // Listeners arrive and the MP3 gets a title: the page follows by itself.
      for (let i = 0; i < 2; i++) listeners.push(new Listener(`http://${b.host}:${b.httpPort}/live.ogg`, 0));
      listeners.push(new Listener(`http://${a.host}:${a.icecastPort}/live.mp3`, 0));
      const auth = `Basic ${Buffer.from(`${mp3.username}:${mp3.password}`).toString('base64')}`;
      await waitFor(async () => (await fetch(`http://${a.host}:${a.httpPort}/admin/metadata?mount=/live.mp3&mode=updinfo&song=${encodeURIComponent('Evening News')}`, { headers: { authorization: auth } })).status === 200, 10_000, 'title update');
      await waitFor(async () => /\b2 listeners\b.*\bb: 2\b/s.test(await section(page, '/live.ogg')), 20_000, 'two listeners on b, on the page');
      await waitFor(async () => /Evening News/.test(await section(page, '/live.mp3')) && /\b1 listener\b.*\ba: 1\b/s.test(await section(page, '/live.mp3')), 20_000, 'the MP3 title and listener on the page');
      assert.equal(await page.evaluate('window.notReloaded'), true, 'updated in place, not reloaded');

      const nodes = String(await page.evaluate(`document.getElementById('nodes').innerText`));
      assert.match(nodes, /a \(this node\)\s+master\s+serving/);
      assert.match(nodes, /\bb\s+standby\s+serving/);
      assert.equal(await page.evaluate(`document.querySelectorAll('section[data-path="/live.ogg"] svg.plot polyline').length`), 1, 'a plot');

      const html = String(await page.evaluate('document.documentElement.outerHTML'));
      for (const secret of [ogg.password, mp3.password]) assert.ok(!html.includes(secret), 'no password on the page');
      await page.screenshot(shot);

      const oggTime = await plays(page, '/live.ogg');
      const mp3Time = await plays(page, '/live.mp3');
      t.diagnostic(`screenshot: ${shot}; played /live.ogg to ${oggTime.toFixed(2)} s and /live.mp3 to ${mp3Time.toFixed(2)} s`);
    });
    assert.ok(existsSync(shot) && statSync(shot).size > 10_000, `a screenshot at ${shot}`);
    // The temporary directory goes when the run ends: RADIOAI_TEST_ARTIFACTS keeps a copy.
    const keep = process.env.RADIOAI_TEST_ARTIFACTS;
    if (keep) copyFileSync(shot, join(keep, 'status-page.png'));
    const json = await (await fetch(`http://${a.host}:${a.httpPort}/status/live.json`)).text();
    for (const secret of [ogg.password, mp3.password]) assert.ok(!json.includes(secret), 'no password in the figures');
  });
});
