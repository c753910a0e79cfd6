/**
 * Source logins checked at the edge, on a real two-node cluster (127.0.22.1
 * is the master, 127.0.22.2 a relay) with real Icecast and ffmpeg: wrong
 * passwords on the relay never open a connection to the master's Icecast
 * (counted in the master Icecast's own access log), a flood of them from one
 * address ends in a lockout while another address still gets in, and a
 * changed password or a deleted mount drops the live source, whether it
 * came through the front door or straight to the master's Icecast.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/net.ts';
import { underAttack } from '../harness/attack.ts';
import { createMount, radioctl, startEtcd, startRadiod, type Creds, type Etcd, type Proc, type Radiod } from '../harness/components.ts';
import { Listener, ffmpegSource, icecastUrl, oggPages } from '../harness/stream.ts';

const TTL = 3;

interface Try {
  host: string;
  port: number;
  /** Source address of the attempt, in 127.0.22.x. */
  from: string;
  dialect: 'SOURCE' | 'PUT' | 'ICE' | 'title';
  mount: string;
  user: string;
  password: string;
}

/** One source login (or title update) as a source client sends it; resolves with the answer's status (0: closed unanswered). */
function attempt(t: Try, timeoutMs = 15_000): Promise<number> {
  const auth = `Authorization: Basic ${Buffer.from(`${t.user}:${t.password}`).toString('base64')}\r\n`;
  const head = {
    SOURCE: `SOURCE ${t.mount} HTTP/1.0\r\n${auth}Content-Type: application/ogg\r\n\r\n`,
    ICE: `SOURCE ${t.mount} ICE/1.0\r\n${auth}Content-Type: application/ogg\r\n\r\n`,
    PUT: `PUT ${t.mount} HTTP/1.1\r\nHost: radio.test\r\n${auth}Content-Type: application/ogg\r\nTransfer-Encoding: chunked\r\n\r\n`,
    title: `GET /admin/metadata?mount=${encodeURIComponent(t.mount)}&mode=updinfo&song=x HTTP/1.0\r\n${auth}\r\n`,
  }[t.dialect];
  return new Promise((resolve) => {
    const sock = connect({ host: t.host, port: t.port, localAddress: t.from });
    let got = '';
    const done = (status: number): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => done(0), timeoutMs);
    sock.on('connect', () => sock.write(head));
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const m = /^(?:HTTP\/1\.[01]|ICE\/1\.0) (\d{3})/.exec(got);
      if (m) done(Number(m[1]));
    });
    sock.on('error', () => done(0));
    sock.on('close', () => done(0));
  });
}

/** Source logins that reached an Icecast, from its access log (one line per ended client: SOURCE, PUT, title updates). */
function icecastSourceLines(n: Radiod): string[] {
  let text = '';
  try {
    text = readFileSync(join(n.dataDir, 'icecast', 'log', 'access.log'), 'utf8');
  } catch {
    // Nothing logged yet.
  }
  return text.split('\n').filter((l) => /"(SOURCE|PUT) |"GET \/admin\/metadata/.test(l));
}

describe('source logins checked at the edge', () => {
  let etcd: Etcd;
  let m: Radiod;
  let r: Radiod;
  let edge: Creds;
  let spare: Creds;
  const procs: Proc[] = [];
  const listeners: Listener[] = [];

  /** Waits until a listener of `mount` on `n` gets Ogg pages. */
  const hear = async (n: Radiod, mount: string, timeoutMs = 20_000): Promise<void> => {
    await waitFor(async () => {
      const l = new Listener(`http://${n.host}:${n.icecastPort}${mount}`);
      listeners.push(l);
      await new Promise((res) => setTimeout(res, 1200));
      l.close();
      return l.status === 200 && oggPages(l.data()) >= 3;
    }, timeoutMs, `Ogg pages of ${mount} from ${n.name}`, 100);
  };
  const source = (url: string): Proc => {
    const p = ffmpegSource(url);
    procs.push(p);
    return p;
  };
  /** ms until `p` exits, or null if it is still running after `ms`. */
  const exitWithin = async (p: Proc, ms: number, since: number): Promise<number | null> =>
    Promise.race([p.exited.then(() => Date.now() - since), new Promise<null>((res) => setTimeout(() => res(null), ms))]);

  before(async () => {
    etcd = await startEtcd();
    m = await startRadiod({ name: 'm', host: '127.0.22.1', etcd: etcd.url, leaseTtl: TTL });
    await waitFor(async () => (await m.health()).body.icecast === 'ready', 15_000, 'm ready as master');
    r = await startRadiod({ name: 'r', host: '127.0.22.2', etcd: etcd.url, leaseTtl: TTL });
    await waitFor(async () => (await r.health()).body.icecast === 'ready', 15_000, 'r ready');
    edge = await createMount(etcd.url, ['create-mount', '/edge.ogg']);
    spare = await createMount(etcd.url, ['create-mount', '/spare.ogg']);
  });
  after(async () => {
    for (const l of listeners) l.close();
    for (const p of procs) await p.kill('SIGKILL');
    for (const n of [r, m]) await n?.stop();
    await etcd?.stop();
  });

  it('refuses wrong passwords at the edge without a connection to the master; the right one streams', async () => {
    const before = icecastSourceLines(m).length;
    const tries: Try[] = [];
    let i = 0;
    for (const dialect of ['SOURCE', 'ICE', 'PUT', 'title'] as const) {
      for (const port of [r.icecastPort, r.httpPort]) {
        for (const user of ['source', edge.username]) {
          // A fresh address per attempt: the lockout is another test.
          tries.push({ host: r.host, port, from: `127.0.22.${100 + i++}`, dialect, mount: '/edge.ogg', user, password: `${edge.password}x` });
        }
      }
    }
    const statuses = await Promise.all(tries.map((t) => attempt(t)));
    assert.deepEqual(statuses, tries.map(() => 401), 'every wrong password is refused with 401');
    await new Promise((res) => setTimeout(res, 1000)); // Icecast logs a client when it ends
    const reached = icecastSourceLines(m).length - before;
    console.log(`# edge auth: ${tries.length} wrong-password attempts on the relay node (4 dialects, 2 ports); ${reached} reached the master's Icecast`);
    assert.equal(reached, 0, 'no wrong password reaches the master');

    // The right password, through the relay's door, is heard on both nodes.
    source(icecastUrl(edge.username, edge.password, r.host, r.icecastPort, '/edge.ogg'));
    await hear(m, '/edge.ogg');
    await hear(r, '/edge.ogg');
    assert.equal(await attempt({ host: r.host, port: r.httpPort, from: '127.0.22.99', dialect: 'title', mount: '/edge.ogg', user: 'source', password: edge.password }), 200, 'a title update with the right password is carried');
  });

  it('attack: a flood of wrong source logins from one address ends in a lockout, never reaching the master; another address gets in', async () => {
    const flooder = '127.0.22.30';
    const before = icecastSourceLines(m).length;
    const statuses: number[] = [];
    let ms = 0;
    await underAttack('wrong-password SOURCE/PUT flood', r, async () => {
      const t0 = Date.now();
      const total = 400;
      let next = 0;
      // 20 connections at a time, each attempt on a new connection, alternating dialects and ports.
      await Promise.all(Array.from({ length: 20 }, async () => {
        while (next < total && Date.now() - t0 < 25_000) {
          const k = next++;
          statuses.push(await attempt({
            host: r.host, port: k % 2 ? r.httpPort : r.icecastPort, from: flooder, dialect: k % 2 ? 'PUT' : 'SOURCE',
            mount: '/edge.ogg', user: 'source', password: `guess-${k}`,
          }));
        }
      }));
      ms = Date.now() - t0;
      await new Promise((res) => setTimeout(res, 1000));
      const reached = icecastSourceLines(m).length - before;
      const count = (s: number): number => statuses.filter((x) => x === s).length;
      assert.equal(reached, 0, 'no attempt of the flood reached the master');
      return `${statuses.length} wrong logins from one address in ${(ms / 1000).toFixed(1)} s: ${count(401)} answered 401, ${count(403)} refused 403 (locked out), ${reached} reached the master's Icecast`;
    }, { mount: '/edge.ogg' });
    assert.equal(statuses.length, 400, 'the flood ran to its end');
    assert.ok(statuses.every((s) => s === 401 || s === 403), `only 401 and 403: ${[...new Set(statuses)].join(',')}`);
    const wrong = statuses.filter((s) => s === 401).length;
    // Each worker thread counts on its own: at most SOURCE_AUTH_FAILURES (10) each before its lockout.
    assert.ok(wrong <= 10 * r.workers, `${wrong} answered 401 before the lockout`);
    const lines = r.proc.output().split('\n').filter((l) => l.includes(`source logins from ${flooder} refused`));
    assert.ok(lines.length >= 1 && lines.length <= r.workers, `one log line per worker thread and lockout, got ${lines.length}:\n${lines.join('\n')}`);
    assert.match(lines[0]!, /refused for 60 s after 10 wrong user names or passwords/);

    // Locked out even with the right password; another address with it is carried to the master.
    assert.equal(await attempt({ host: r.host, port: r.icecastPort, from: flooder, dialect: 'SOURCE', mount: '/spare.ogg', user: 'source', password: spare.password }), 403);
    assert.equal(await attempt({ host: r.host, port: r.icecastPort, from: '127.0.22.31', dialect: 'SOURCE', mount: '/spare.ogg', user: 'source', password: spare.password }), 200);
  });

  it('drops the live source within seconds when the password changes or the mount is deleted, through the door or straight to the master', async () => {
    // /edge.ogg is live through the relay's door (first test). A second mount takes its source at the master's own Icecast.
    const viaDoor = procs.at(-1)!;
    const direct = await createMount(etcd.url, ['create-mount', '/direct.ogg']);
    await waitFor(async () => (await radioctl(etcd.url, ['status'])).stdout.includes('/direct.ogg'), 5000, 'the mount known');
    await new Promise((res) => setTimeout(res, 1500)); // the master's Icecast has re-read its configuration
    const straight = source(icecastUrl(direct.username, direct.password, m.host, m.icecastInternalPort, '/direct.ogg'));
    await hear(m, '/direct.ogg');

    /** radioctl is a process of its own (a second or two to start): times count from its start and from its end. */
    const rotate = async (path: string): Promise<{ at: number; ran: number; creds: Creds }> => {
      const at = Date.now();
      const res = await radioctl(etcd.url, ['--json', 'edit-mount', path, '--new-password']);
      assert.equal(res.code, 0, res.stderr);
      return { at, ran: Date.now() - at, creds: JSON.parse(res.stdout) as Creds };
    };
    const a = await rotate('/edge.ogg');
    const doorMs = await exitWithin(viaDoor, 10_000, a.at);
    const b = await rotate('/direct.ogg');
    const directMs = await exitWithin(straight, 10_000, b.at);
    console.log(`# edge auth: a new password dropped the source through the door ${doorMs} ms after radioctl started (it ran ${a.ran} ms), straight at the master's Icecast after ${directMs} ms (radioctl ran ${b.ran} ms)`);
    assert.ok(doorMs !== null && doorMs < a.ran + 5000, `the door-carried source dropped within 5 s (${doorMs})`);
    assert.ok(directMs !== null && directMs < b.ran + 5000, `the source at the master's Icecast dropped within 5 s (${directMs})`);
    // Whichever sees it first: the relay's door, or the master telling its Icecast.
    const byDoor = /source on \/edge\.ogg dropped/.test(r.proc.output());
    console.log(`# edge auth: the door-carried source was dropped by ${byDoor ? 'the relay\'s door' : 'the master\'s Icecast (killsource)'}`);
    assert.match(`${r.proc.output()}${m.proc.output()}`, /source on \/edge\.ogg dropped: its credentials changed|dropping the source of \/edge\.ogg: its credentials changed/);
    assert.match(m.proc.output(), /dropping the source of \/direct\.ogg: its credentials changed/);

    // The old password is refused at the edge; the new one streams again.
    assert.equal(await attempt({ host: r.host, port: r.icecastPort, from: '127.0.22.40', dialect: 'SOURCE', mount: '/edge.ogg', user: 'source', password: edge.password }), 401);
    const again = source(icecastUrl(a.creds.username, a.creds.password, r.host, r.icecastPort, '/edge.ogg'));
    await hear(m, '/edge.ogg');
    await hear(r, '/edge.ogg');

    // Deleting the mount drops its source too.
    const t = Date.now();
    assert.equal((await radioctl(etcd.url, ['delete-mount', '/edge.ogg'])).code, 0);
    const ran = Date.now() - t;
    const deletedMs = await exitWithin(again, 10_000, t);
    console.log(`# edge auth: deleting the mount dropped its source ${deletedMs} ms after radioctl started (it ran ${ran} ms)`);
    assert.ok(deletedMs !== null && deletedMs < ran + 5000, `dropped within 5 s of delete-mount (${deletedMs})`);
  });
  it('kick-source drops the live source on every node, and its listeners move to the fallback without reconnecting', async (t) => {
    const fb = await createMount(etcd.url, ['create-mount', '/kick-fb.ogg']);
    const main = await createMount(etcd.url, ['create-mount', '/kick.ogg', '--fallback', '/kick-fb.ogg']);
    await waitFor(async () => (await radioctl(etcd.url, ['status'])).stdout.includes('/kick.ogg'), 5000, 'the mounts known');
    await new Promise((res) => setTimeout(res, 1500)); // the master's Icecast has re-read its configuration
    source(icecastUrl(fb.username, fb.password, m.host, m.icecastInternalPort, '/kick-fb.ogg'));
    // ffmpeg never reconnects: once kicked, it is gone for good.
    const kicked = source(icecastUrl(main.username, main.password, r.host, r.icecastPort, '/kick.ogg'));
    await hear(m, '/kick-fb.ogg');
    await hear(r, '/kick.ogg');
    const l = new Listener(`http://${r.host}:${r.httpPort}/kick.ogg`);
    listeners.push(l);
    await waitFor(() => l.bytes > 0, 10_000, 'a listener of /kick.ogg');

    const at = Date.now();
    const res = await radioctl(etcd.url, ['kick-source', '/kick.ogg']);
    assert.equal(res.code, 0, res.stderr);
    const ms = await exitWithin(kicked, 10_000, at);
    t.diagnostic(`kick-source dropped the source ${ms} ms after radioctl started (it ran ${Date.now() - at} ms at most)`);
    assert.ok(ms !== null, 'the kicked source program was disconnected');
    assert.match(`${r.proc.output()}${m.proc.output()}`, /source on \/kick\.ogg dropped: kicked|dropping the source of \/kick\.ogg: kicked/);
    // Off air in the status too, though Icecast still lists the mount for its listener on the fallback.
    await waitFor(async () => {
      const st = JSON.parse((await radioctl(etcd.url, ['--json', 'status'])).stdout) as { mounts: { path: string; source: boolean }[] };
      return st.mounts.find((x) => x.path === '/kick.ogg')?.source === false;
    }, 10_000, '/kick.ogg without a source in radioctl status');
    // The listener stayed and hears the fallback.
    const before = l.bytes;
    await new Promise((res) => setTimeout(res, 4000));
    assert.equal(l.ended, false, 'the listener was disconnected');
    assert.ok(l.bytes - before > 16_384, `the listener hears the fallback (${l.bytes - before} bytes in 4 s)`);

    // A relay mount has no source to kick; a missing mount is exit 2.
    await createMount(etcd.url, ['create-mount', '/kick-relay.ogg', '--relay', 'http://127.0.0.1:9/x']);
    const relay = await radioctl(etcd.url, ['kick-source', '/kick-relay.ogg']);
    assert.equal(relay.code, 1);
    assert.match(relay.stderr, /is relayed from http:\/\/127\.0\.0\.1:9\/x: it has no source to kick/);
    assert.equal((await radioctl(etcd.url, ['kick-source', '/nope.ogg'])).code, 2);
  });
});
