/**
 * The live status page on two real nodes with an Ogg and an MP3 mount and headless
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
import { ffmpegIcecastSource, inBrowser, type BrowserPage } from '../harness/clients.ts';
import { createMount, startEtcd, startRadiod, tempDir, type Creds, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { Listener } from '../harness/stream.ts';

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
      let lastAnswer = 'none';
      await waitFor(async () => {
        const r = await fetch(`http://${a.host}:${a.httpPort}/admin/metadata?mount=/live.mp3&mode=updinfo&song=${encodeURIComponent('Evening News')}`, { headers: { authorization: auth } });
        lastAnswer = `${r.status} ${(await r.text()).slice(0, 200)}`;
        return r.status === 200;
      }, 10_000, 'title update').catch((err: Error) => {
        throw new Error(`${err.message}; the last answer: ${lastAnswer}`);
      });
      await waitFor(async () => /\b2 listeners\b.*\bb: 2\b/s.test(await section(page, '/live.ogg')), 20_000, 'two listeners on b, on the page');
      await waitFor(async () => /Evening News/.test(await section(page, '/live.mp3')) && /\b1 listener\b.*\ba: 1\b/s.test(await section(page, '/live.mp3')), 20_000, 'the MP3 title and listener on the page');
      assert.equal(await page.evaluate('window.notReloaded'), true, 'updated in place, not reloaded');

      // Whichever node won the election (a campaigns once it is up, which b may beat on a busy machine).
      const master = String((await a.health()).body.master);
      const role = (n: string): string => (n === master ? 'master' : 'standby');
      const nodes = String(await page.evaluate(`document.getElementById('nodes').innerText`));
      assert.ok(master === 'a' || master === 'b', `a master elected (${master})`);
      assert.match(nodes, new RegExp(`a \\(this node\\)\\s+${role('a')}\\s+serving`));
      assert.match(nodes, new RegExp(`\\bb\\s+${role('b')}\\s+serving`));
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
