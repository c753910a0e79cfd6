/**
 * Icecast and liquidsoap under radiod, with real icecast2, ffmpeg sources,
 * liquidsoap and HTTP listeners: relays from the master, relay mounts from
 * an external station, fallback, transcoding, Icecast crashes and a master
 * change. Three nodes on 127.0.0.2-4 share one etcd.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { alive, waitFor } from '../harness/net.ts';
import { createMount, pidFrom, radioctl, type Creds, startEtcd, startRadiod, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { Listener, ffmpegSource, icecastUrl, mp3Frames, oggPages, startStation } from '../harness/stream.ts';

const TTL = 3;

describe('Icecast and liquidsoap under radiod', () => {
  let etcd: Etcd;
  const nodes: Radiod[] = [];
  const procs: Proc[] = [];
  const listeners: Listener[] = [];
  let a: Radiod;
  let b: Radiod;
  let c: Radiod;
  const ctl = (...args: string[]) => radioctl(etcd.url, args);
  const create = (...args: string[]): Promise<Creds> => createMount(etcd.url, args);
  /**
   * Starts an ffmpeg source and, like any source client, tries again while it
   * is refused (a new mount reaches Icecast's configuration a moment after
   * create-mount; a new master takes a moment to accept sources).
   */
  const source = async (n: Radiod, m: Creds, freq = 440): Promise<Proc> =>
    waitFor(async () => {
      const p = ffmpegSource(icecastUrl(m.username, m.password, n.host, n.icecastPort, m.path), freq);
      procs.push(p);
      await new Promise((r) => setTimeout(r, 1500));
      return alive(p.pid) ? p : null;
    }, 20_000, `Icecast on ${n.name} to accept a source for ${m.path}`, 100);
  const listen = (n: Radiod, path: string): Listener => {
    const l = new Listener(`http://${n.host}:${n.icecastPort}${path}`);
    listeners.push(l);
    return l;
  };
  /** Listens until `pages` Ogg pages arrive; returns the listener. */
  const hear = async (n: Radiod, path: string, timeoutMs = 20_000, pages = 3): Promise<Listener> => {
    return waitFor(async () => {
      const l = listen(n, path);
      await new Promise((r) => setTimeout(r, 1500));
      if (l.status === 200 && oggPages(l.data()) >= pages) return l;
      l.close();
      return null;
    }, timeoutMs, `Ogg pages from ${n.name}${path}`, 100);
  };

  before(async () => {
    etcd = await startEtcd();
    a = await startRadiod({ name: 'a', host: '127.0.0.2', etcd: etcd.url, leaseTtl: TTL });
    await waitFor(async () => (await a.health()).body.icecast === 'ready', 15_000, 'a master with Icecast');
    b = await startRadiod({ name: 'b', host: '127.0.0.3', etcd: etcd.url, leaseTtl: TTL });
    c = await startRadiod({ name: 'c', host: '127.0.0.4', etcd: etcd.url, leaseTtl: TTL });
    nodes.push(a, b, c);
    for (const n of nodes) await waitFor(async () => (await n.health()).body.icecast === 'ready', 15_000, `${n.name} Icecast ready`);
  });
  after(async () => {
    for (const l of listeners) l.close();
    for (const p of procs) await p.kill('SIGKILL');
    for (const n of nodes) await n.stop();
    await etcd?.stop();
  });

  it('relays a source on the master to listeners on every other node', async (t) => {
    const t0 = Date.now();
    const live = await create('create-mount', '/live.ogg');
    await source(a, live);
    const lb = await hear(b, '/live.ogg');
    t.diagnostic(`create-mount to audio on node b: ${Date.now() - t0} ms`);
    await hear(c, '/live.ogg');
    assert.match(lb.contentType, /ogg/);
    interface Status { master: string; nodes: { name: string; icecast: string }[]; mounts: { path: string; source: boolean; ready: string[] }[] }
    const st = JSON.parse((await ctl('--json', 'status')).stdout) as Status;
    assert.equal(st.master, 'a');
    assert.deepEqual(st.nodes.map((n) => n.icecast), [`127.0.0.2:${a.icecastInternalPort}`, `127.0.0.3:${b.icecastInternalPort}`, `127.0.0.4:${c.icecastInternalPort}`]);
    await waitFor(async () => {
      const s = JSON.parse((await ctl('--json', 'status')).stdout) as Status;
      const m = s.mounts.find((x) => x.path === '/live.ogg');
      return m?.source === true && m.ready.join() === 'a,c';
    }, 10_000, 'status to show the source, and the mount ready on a and on its relay c (b, the standby, relays nothing)');
  });

  it('pulls a relay mount from an external station on every node', async () => {
    const station = await startStation();
    procs.push(station.proc, station.source('/station.ogg'));
    const port = station.port;
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/station.ogg`, { signal: AbortSignal.timeout(1000) }).catch(() => null))?.status === 200, 10_000, 'the station to be on air');
    await create('create-mount', '/ext.ogg', '--relay', `http://127.0.0.1:${port}/station.ogg`);
    for (const n of nodes) await hear(n, '/ext.ogg', 30_000);
  });

  it('moves listeners to the fallback mount when the source stops, without reconnecting', async (t) => {
    const main = await create('create-mount', '/main.ogg', '--fallback', '/live.ogg');
    const src = await source(a, main, 880);
    const onMaster = await hear(a, '/main.ogg');
    const onRelay = await hear(b, '/main.ogg');
    await src.kill('SIGKILL');
    const before = { master: onMaster.bytes, relay: onRelay.bytes };
    await new Promise((r) => setTimeout(r, 6000));
    for (const [name, l, b0] of [['master', onMaster, before.master], ['relay', onRelay, before.relay]] as const) {
      assert.ok(!l.ended && l.error === null, `the ${name} listener was disconnected`);
      const got = l.bytes - b0;
      t.diagnostic(`${name} listener received ${got} bytes in the 6 s after the source stopped`);
      assert.ok(got > 40_000, `the ${name} listener received only ${got} bytes after the source stopped`);
    }
  });

  it('transcodes a mount with one liquidsoap, restarts it after kill -9, and stops it on delete', async () => {
    await create('create-transcoding-mount', '/out.mp3', '--source', '/live.ogg', '--codec', 'mp3', '--bitrate', '64');
    const l = await waitFor(async () => {
      const x = listen(a, '/out.mp3');
      await new Promise((r) => setTimeout(r, 2000));
      if (mp3Frames(x.data()).length >= 20) return x;
      x.close();
      return null;
    }, 30_000, 'MP3 frames from /out.mp3', 100);
    const frames = mp3Frames(l.data());
    assert.ok(frames.every((f) => f.bitrate === 64 && f.samplerate === 44100), 'every frame is 64 kbit/s at 44.1 kHz');
    l.close();

    const pidFiles = nodes.map((n) => join(n.dataDir, 'liquidsoap', 'out.mp3.pid'));
    const running = (): number[] => pidFiles.map(pidFrom).filter((p): p is number => p !== null && alive(p));
    assert.equal(running().length, 1, 'exactly one liquidsoap in the cluster');
    const first = running()[0]!;
    process.kill(first, 'SIGKILL');
    await waitFor(() => running().length === 1 && running()[0] !== first, 15_000, 'liquidsoap to be restarted');
    await waitFor(async () => {
      const x = listen(a, '/out.mp3');
      await new Promise((r) => setTimeout(r, 1500));
      x.close();
      return mp3Frames(x.data()).length >= 10;
    }, 30_000, 'MP3 again after the restart', 100);

    const second = running()[0]!;
    assert.equal((await ctl('delete-mount', '/out.mp3')).code, 0);
    await waitFor(() => !alive(second) && running().length === 0, 10_000, 'liquidsoap to stop after delete-mount');
  });

  it('restarts a killed Icecast, reports the node not ready meanwhile, and resumes relays', async () => {
    const pid = pidFrom(join(c.dataDir, 'icecast.pid'));
    assert.ok(pid !== null && alive(pid));
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await c.health()).body.icecast === 'down', 5000, 'c to report Icecast down', 20);
    await waitFor(() => {
      const p = pidFrom(join(c.dataDir, 'icecast.pid'));
      return p !== null && p !== pid && alive(p);
    }, 10_000, 'a new icecast2');
    await waitFor(async () => (await c.health()).body.icecast === 'ready', 10_000, 'c ready again');
    await hear(c, '/live.ogg', 30_000);
  });

  it('moves sources to the new master when the master dies, and relays follow', async (t) => {
    const live = JSON.parse((await ctl('--json', 'show-mount', '/live.ogg')).stdout) as Creds;
    const icecastPid = pidFrom(join(a.dataDir, 'icecast.pid'))!;
    const t0 = Date.now();
    process.kill(a.proc.pid, 'SIGKILL');
    process.kill(icecastPid, 'SIGKILL');
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    await waitFor(async () => (await b.health()).body.master === 'b', (TTL + 2) * 1000, 'b to become master');
    const elected = Date.now() - t0;
    // The source client reconnects, now to the new master.
    await source(b, live, 550);
    await hear(b, '/live.ogg');
    await hear(c, '/live.ogg', 30_000);
    t.diagnostic(`master killed -> b elected in ${elected} ms -> relay on c flowing ${Date.now() - t0} ms after the kill`);
  });

  it('restarts the transcoder when its mount is edited and moves it when its node dies', async (t) => {
    await create('create-transcoding-mount', '/t.mp3', '--source', '/live.ogg', '--bitrate', '96');
    const survivors = [b, c];
    const pidFile = (n: Radiod): string => join(n.dataDir, 'liquidsoap', 't.mp3.pid');
    const runner = await waitFor(() => survivors.find((n) => {
      const p = pidFrom(pidFile(n));
      return p !== null && alive(p);
    }), 15_000, 'a transcoder for /t.mp3');
    const first = pidFrom(pidFile(runner))!;
    assert.equal((await ctl('edit-mount', '/t.mp3', '--new-password')).code, 0);
    // Stopping liquidsoap may take its 3 s grace, and a loaded machine is slower still.
    await waitFor(() => {
      const p = pidFrom(pidFile(runner));
      return !alive(first) && p !== null && p !== first && alive(p);
    }, 30_000, 'the transcoder to restart with the new password').catch((err: Error) => {
      const where = survivors.map((n) => `${n.name}: pid file ${pidFrom(pidFile(n)) ?? 'none'}`).join(', ');
      throw new Error(`${err.message} (first ${first} ${alive(first) ? 'alive' : 'gone'}; ${where})\n--- ${runner.name} ---\n${runner.proc.output().split('\n').filter((l) => /transcod|liquidsoap/.test(l)).slice(-30).join('\n')}`);
    });

    const other = survivors.find((n) => n !== runner)!;
    const t0 = Date.now();
    for (const pid of [runner.proc.pid, pidFrom(pidFile(runner)), pidFrom(join(runner.dataDir, 'icecast.pid'))]) {
      if (pid !== null && alive(pid)) process.kill(pid, 'SIGKILL');
    }
    await waitFor(() => {
      const p = pidFrom(pidFile(other));
      return p !== null && alive(p);
    }, (TTL + 5) * 1000, `${other.name} to take the transcoder over`);
    t.diagnostic(`transcoder moved to ${other.name} ${Date.now() - t0} ms after its node was killed`);
    await waitFor(async () => {
      const x = listen(other, '/t.mp3');
      await new Promise((r) => setTimeout(r, 1500));
      x.close();
      const f = mp3Frames(x.data());
      return f.length >= 10 && f.every((fr) => fr.bitrate === 96);
    }, 30_000, '96 kbit/s MP3 from the new transcoder', 100);
  });
});
