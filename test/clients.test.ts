/**
 * radioai as a drop-in Icecast for the programs people use, from Debian's
 * packages, on both public ports of two nodes (127.0.0.41 master,
 * 127.0.0.42 relay, one etcd): every source program sends to the relay's
 * HTTP_PORT and ICECAST_PORT and a listener on the master hears it; every
 * player, recorder and a headless browser on a page from another origin
 * listens on the relay's two ports to mounts whose source is on the master,
 * and titles sent with /admin/metadata reach them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/net.ts';
import {
  SOURCE_CLIENTS, browserPlays, curlListen, curlPutSource, ezstreamSource, ffmpegHttpPutSource, ffmpegIcecastSource, ffmpegLegacySource, ffprobeListen, icyListen, ices2Source, liquidsoapSource,
  mpg123Listen, mplayerListen, mpvListen, ogg123Listen, streamripperListen, vlcListen, type Format, type ListenResult, type SourceClient,
} from '../harness/clients.ts';
import { createMount, startEtcd, startRadiod, type Etcd, type Radiod } from '../harness/components.ts';
import { KeepSource, Listener, ffmpegMp3Source, ffmpegSource, icecastUrl, mp3Frames, oggPages, rawExchange } from '../harness/stream.ts';

const TTL = 3;
// ASCII: players differ in how they read a title's other bytes (streamripper takes them as Latin-1).
const TITLE = 'radioai test title';

describe('Icecast clients on both public ports', () => {
  let etcd: Etcd;
  let a: Radiod;
  let b: Radiod;
  const nodes: Radiod[] = [];
  const keep: KeepSource[] = [];
  const ports = (n: Radiod): [string, number][] => [['HTTP_PORT', n.httpPort], ['ICECAST_PORT', n.icecastPort]];
  /** What a plain HTTP/1.0 listener gets from each node right now, and the relay's log: said when a player fails. */
  const evidence = async (path: string): Promise<string> => {
    const out: string[] = [];
    for (const n of [b, a]) {
      const got = await rawExchange(n.host, n.httpPort, `GET ${path} HTTP/1.0\r\n\r\n`, { timeoutMs: 4000, until: (g) => g.length > 4096 });
      const headEnd = got.indexOf('\r\n\r\n');
      out.push(`${n.host}:${n.httpPort}${path} -> ${JSON.stringify(got.subarray(0, headEnd < 0 ? 200 : Math.min(headEnd + 120, 400)).toString('latin1'))} (${got.length} bytes in 4 s)`);
    }
    return `${out.join('\n')}\nrelay's log:\n${b.proc.output().slice(-2500)}`;
  };

  /** A listener on `url` that gets audio of `format` (Ogg pages or MP3 frames); its status if not. */
  const hears = async (url: string, format: Format, timeoutMs: number): Promise<void> => {
    await waitFor(async () => {
      const l = new Listener(url);
      try {
        await new Promise((res) => setTimeout(res, 2000));
        const d = l.data();
        return l.status === 200 && (format === 'ogg' ? oggPages(d) >= 5 : mp3Frames(d).length >= 20);
      } finally {
        l.close();
      }
    }, timeoutMs, `audio at ${url}`, 200);
  };

  before(async () => {
    etcd = await startEtcd('127.0.0.41');
    a = await startRadiod({ name: 'a', host: '127.0.0.41', etcd: etcd.url, leaseTtl: TTL, workers: 2 });
    await waitFor(async () => (await a.health()).body.icecast === 'ready', 15_000, 'a ready as master');
    b = await startRadiod({ name: 'b', host: '127.0.0.42', etcd: etcd.url, leaseTtl: TTL, workers: 2 });
    nodes.push(a, b);
    await waitFor(async () => (await b.health()).body.icecast === 'ready', 15_000, 'b ready');
  });
  after(async () => {
    for (const s of keep) await s.stop();
    for (const n of nodes) await n.stop();
    await etcd?.stop();
  });

  describe('sources, sent to the relay node, heard on the master', () => {
    const byName = (start: SourceClient): string => SOURCE_CLIENTS.find((c) => c.start === start)!.name;
    const cases: { name: string; start: SourceClient; format: Format; user?: string }[] = [
      { name: byName(ffmpegIcecastSource), start: ffmpegIcecastSource, format: 'mp3' },
      { name: byName(ffmpegLegacySource), start: ffmpegLegacySource, format: 'ogg' },
      { name: byName(ffmpegHttpPutSource), start: ffmpegHttpPutSource, format: 'ogg' },
      // Chunked MP3: Icecast itself would keep the chunk framing in the audio; radiod decodes it.
      { name: byName(curlPutSource), start: curlPutSource, format: 'mp3' },
      { name: byName(ezstreamSource), start: ezstreamSource, format: 'mp3' },
      { name: byName(ices2Source), start: ices2Source, format: 'ogg' },
      { name: byName(liquidsoapSource), start: liquidsoapSource, format: 'ogg' },
      { name: 'ffmpeg logging in as the Icecast default user "source"', start: ffmpegIcecastSource, format: 'ogg', user: 'source' },
    ];
    let k = 0;
    for (const c of cases) {
      for (const kind of ['HTTP_PORT', 'ICECAST_PORT'] as const) {
        it(`${c.name} on ${kind}`, async (t) => {
          const mount = `/src${++k}.${c.format}`;
          const creds = await createMount(etcd.url, ['create-mount', mount]);
          const port = kind === 'HTTP_PORT' ? b.httpPort : b.icecastPort;
          const t0 = Date.now();
          // Like any source client, start again while refused: a new mount reaches the master's Icecast a moment after create-mount.
          const src = new KeepSource(() => c.start({ host: b.host, port, mount, user: c.user ?? creds.username, password: creds.password, format: c.format }));
          try {
            await hears(`http://${a.host}:${a.httpPort}${mount}`, c.format, 30_000).catch((err: Error) => {
              const lines = (n: Radiod): string => n.proc.output().split('\n').filter((l) => !l.includes('fserve')).slice(-25).join('\n');
              throw new Error(`${err.message} (the source program was started ${src.starts} times)\nrelay's log:\n${lines(b)}\nmaster's log:\n${lines(a)}`);
            });
            t.diagnostic(`${c.name} on b ${kind}: heard on a after ${Date.now() - t0} ms`);
          } finally {
            await src.stop();
          }
        });
      }
    }
  });

  describe('listeners on the relay node, sources on the master', () => {
    before(async () => {
      const mp3 = await createMount(etcd.url, ['create-mount', '/music.mp3']);
      const ogg = await createMount(etcd.url, ['create-mount', '/music.ogg']);
      keep.push(
        new KeepSource(() => ffmpegMp3Source(icecastUrl(mp3.username, mp3.password, a.host, a.icecastPort, '/music.mp3'))),
        new KeepSource(() => ffmpegSource(icecastUrl(ogg.username, ogg.password, a.host, a.httpPort, '/music.ogg'))),
      );
      await hears(`http://${b.host}:${b.httpPort}/music.mp3`, 'mp3', 30_000);
      await hears(`http://${b.host}:${b.httpPort}/music.ogg`, 'ogg', 30_000);
      // The MP3 mount's title, as libshout-based sources set it.
      await waitFor(async () => (await fetch(`http://${a.host}:${a.httpPort}/admin/metadata?mount=/music.mp3&mode=updinfo&song=${encodeURIComponent(TITLE)}`, {
        headers: { authorization: `Basic ${Buffer.from(`source:${mp3.password}`).toString('base64')}` },
      })).status === 200, 10_000, 'the title update');
    });

    const players: { name: string; listen: (url: string) => Promise<ListenResult>; formats: Format[] }[] = [
      { name: 'mpv', listen: (u) => mpvListen(u), formats: ['ogg', 'mp3'] },
      { name: 'vlc', listen: (u) => vlcListen(u), formats: ['ogg', 'mp3'] },
      { name: 'mplayer', listen: (u) => mplayerListen(u), formats: ['ogg', 'mp3'] },
      { name: 'mpg123', listen: (u) => mpg123Listen(u), formats: ['mp3'] },
      { name: 'ogg123', listen: (u) => ogg123Listen(u), formats: ['ogg'] },
      { name: 'streamripper (ICY titles)', listen: (u) => streamripperListen(u, { seconds: 6, expectTitle: TITLE }), formats: ['mp3'] },
      { name: 'ffprobe', listen: (u) => ffprobeListen(u), formats: ['ogg', 'mp3'] },
      { name: 'curl --http1.0', listen: (u) => curlListen(u, { http: '1.0' }), formats: ['ogg', 'mp3'] },
      { name: 'curl --http1.1', listen: (u) => curlListen(u, { http: '1.1' }), formats: ['ogg', 'mp3'] },
    ];
    for (const p of players) {
      for (const format of p.formats) {
        it(`${p.name} plays ${format} on both ports`, async () => {
          for (const [kind, port] of ports(b)) {
            // Players give up on a hiccup; a listener test allows one more try before it fails.
            let r = await p.listen(`http://${b.host}:${port}/music.${format}`);
            if (!r.ok) r = await p.listen(`http://${b.host}:${port}/music.${format}`);
            if (!r.ok) assert.fail(`${kind}: ${r.evidence}\n${r.output}\n${await evidence(`/music.${format}`)}`);
          }
        });
      }
    }

    it('a raw HTTP/1.0 listener with Icy-MetaData: 1 gets exact metaint framing and the title', async () => {
      for (const [kind, port] of ports(b)) {
        const r = await icyListen(`http://${b.host}:${port}/music.mp3`, { seconds: 4, expectTitle: TITLE });
        assert.ok(r.ok && r.consistent, `${kind}: ${r.evidence} ${r.problem ?? ''}`);
        assert.equal(r.status, 'HTTP/1.0 200 OK');
        assert.equal(r.metaint, 16_000);
        assert.equal(r.headers['transfer-encoding'], undefined);
      }
    });

    it('headless Chromium plays Ogg and MP3 in an <audio> element of a page from another origin', async (t) => {
      for (const [kind, port] of ports(b)) {
        for (const format of ['ogg', 'mp3'] as const) {
          const r = await browserPlays(`http://${b.host}:${port}/music.${format}`, { crossOrigin: true });
          t.diagnostic(`${kind} ${format}: ${r.evidence}`);
          assert.ok(r.ok, `${kind} ${format}: ${r.evidence}`);
        }
      }
    });
  });
});
