/**
 * Source logins, the pure parts: admission against the snapshot's salted
 * credential hash, the per-address failure table (delays, lockout, relock,
 * forgetting, its bound), the door's gate over a real shared snapshot
 * (counters, held-back refusals, a carried source dropped when its
 * credentials change), and which mounts the master's Icecast must drop a
 * source from.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { waitFor } from '../../../harness/net.ts';
import { admitSource, stillAdmitted } from '../../../src/proxy/source-admission.ts';
import { SourceGate, kickedSince } from '../../../src/proxy/source-gate.ts';
import { IcecastDoor } from '../../../src/proxy/icecast-door.ts';
import type { Hubs } from '../../../src/proxy/hubs.ts';
import { ListenRouter } from '../../../src/proxy/listen-route.ts';
import { Pages } from '../../../src/proxy/pages.ts';
import { GUARD, SourceGuard, addressKey, delayFor } from '../../../src/proxy/source-guard.ts';
import { SourceKiller, credentialChanges, predates } from '../../../src/icecast/source-kill.ts';
import type { IcecastStats } from '../../../src/icecast/icecast-stats.ts';
import { SnapshotReader } from '../../../src/ipc/snapshot-reader.ts';
import { NO_STREAM_INFO, type SnapshotInput } from '../../../src/ipc/snapshot.ts';
import { S, WorkerStats, statsBuffer, sumStats } from '../../../src/ipc/worker-stats.ts';
import type { MountRecord } from '../../../src/state/mount-record.ts';
import { SnapshotWriter } from '../../../src/ipc/snapshot-writer.ts';
import { oggPage } from '../../../harness/ogg-pages.ts';

const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

/** A real shared snapshot with node `a` as master and mounts with the given logins. */
function cluster(logins: Record<string, [string, string]>, master: string | null = 'a', icecast = { host: '10.0.0.1', port: 8001 }): { writer: SnapshotWriter; reader: SnapshotReader; publish: (l: Record<string, [string, string]>) => void } {
  const writer = new SnapshotWriter({ maxNodes: 4, maxMounts: 8, stringBytes: 8192 });
  const reader = new SnapshotReader(writer.sab);
  const publish = (l: Record<string, [string, string]>): void => {
    const input: SnapshotInput = {
      etcdConnected: true, stateLoaded: true, draining: false, outOfService: false, etcdSeenAt: 0, self: 'a', master, zoneSerial: 1,
      nodes: [{
        name: 'a', addresses: [icecast.host], httpPort: 80, dnsPort: 53, icecastPort: 8000, icecastInternalPort: icecast.port, httpsPort: 0, alive: true, icecastReady: true,
        etcdHealthy: true, proxy: true, listeners: 0, bandwidthKbps: 0, maxListeners: 0, bandwidthLimitKbps: 0,
      }],
      mounts: Object.entries(l).map(([path, [user, pw]]) => ({
        path, relay: false, transcoded: false, kickedAt: 0, fallbackPath: null, sourceConnected: false, listeners: 0, readyOn: [],
        info: { ...NO_STREAM_INFO, username: user }, credential: pw === '' ? '' : writer.credential(user, pw),
      })),
    };
    writer.publish(input);
  };
  publish(logins);
  return { writer, reader, publish };
}

describe('source admission at the edge', () => {
  const { reader } = cluster({ '/live.ogg': ['src-live', 'pw:with:colons'], '/new.ogg': ['src-new', ''] });
  const s = reader.current();
  const status = (a: ReturnType<typeof admitSource>): number => (a.kind === 'refuse' ? a.answer.status : 0);
  const wrong = (a: ReturnType<typeof admitSource>): boolean => a.kind === 'refuse' && a.wrongLogin;

  it('admits the mount\'s own user and Icecast\'s default user with the right password, logged in as the mount\'s user', () => {
    const own = admitSource(s, '/live.ogg', basic('src-live', 'pw:with:colons'));
    assert.equal(own.kind, 'admit');
    if (own.kind === 'admit') {
      assert.equal(own.authorization, basic('src-live', 'pw:with:colons'));
      assert.equal(own.credential, s.mounts.find((m) => m.path === '/live.ogg')!.credential);
    }
    const dflt = admitSource(s, '/live.ogg', basic('source', 'pw:with:colons'));
    assert.equal(dflt.kind, 'admit');
    if (dflt.kind === 'admit') {
      assert.equal(dflt.authorization, basic('src-live', 'pw:with:colons'));
      assert.deepEqual(dflt.target, { name: 'a', host: '10.0.0.1', port: 8001 });
    }
  });

  it('refuses a wrong password or user with 401 and counts it as a wrong login', () => {
    for (const a of [basic('src-live', 'pw'), basic('source', 'pw:with:colon'), basic('source', ''), basic('admin', 'pw:with:colons'), 'Bearer abc']) {
      const r = admitSource(s, '/live.ogg', a);
      assert.equal(status(r), 401, a);
      assert.ok(wrong(r), a);
      if (r.kind === 'refuse') assert.ok(r.answer.headers.some(([k]) => k === 'WWW-Authenticate'));
    }
  });

  it('refuses without counting: no credentials (a client asking which to send), unknown mounts, no master, no credential known', () => {
    const none = admitSource(s, '/live.ogg', undefined);
    assert.equal(status(none), 401);
    assert.ok(!wrong(none));
    assert.equal(status(admitSource(s, '/nope', basic('source', 'x'))), 404);
    assert.equal(status(admitSource({ ...s, master: null }, '/live.ogg', basic('source', 'pw:with:colons'))), 503);
    const unknown = admitSource(s, '/new.ogg', basic('source', 'x'));
    assert.equal(status(unknown), 503);
    assert.ok(!wrong(unknown));
  });

  it('tells whether a carried source may go on: mount still there with the same credentials', () => {
    const { reader: r, publish } = cluster({ '/live.ogg': ['u', 'one'] });
    const cred = r.current().mounts[0]!.credential;
    assert.ok(stillAdmitted(r.current(), '/live.ogg', cred));
    publish({ '/live.ogg': ['u', 'one'], '/other.ogg': ['v', 'x'] });
    assert.ok(stillAdmitted(r.current(), '/live.ogg', cred), 'other mounts changing is no reason');
    publish({ '/live.ogg': ['u', 'two'] });
    assert.ok(!stillAdmitted(r.current(), '/live.ogg', cred), 'a new password');
    publish({ '/live.ogg': ['w', 'one'] });
    assert.ok(!stillAdmitted(r.current(), '/live.ogg', cred), 'a new user name');
    publish({});
    assert.ok(!stillAdmitted(r.current(), '/live.ogg', cred), 'the mount deleted');
  });
});

describe('wrong-login table', () => {
  const clock = (): { now: () => number; advance: (ms: number) => void } => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms) => (t += ms) };
  };

  it('answers the first failures at once, then later and later, capped', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 20].map(delayFor), [0, 0, 500, 1000, 2000, 4000, 4000, 4000]);
  });

  it('locks an address out after the limit, for the lockout period, right password or not', () => {
    const c = clock();
    const g = new SourceGuard({ failures: 5, lockoutSeconds: 60 }, { now: c.now });
    const seen = [1, 2, 3, 4].map(() => g.failed('192.0.2.1'));
    assert.deepEqual(seen.map((f) => [f.delayMs, f.lockedNow]), [[0, false], [0, false], [500, false], [1000, false]]);
    assert.equal(g.check('192.0.2.1').kind, 'pass');
    const fifth = g.failed('192.0.2.1');
    assert.deepEqual([fifth.delayMs, fifth.lockedNow], [0, true]);
    assert.deepEqual(g.check('192.0.2.1'), { kind: 'locked', retryAfterSeconds: 60 });
    assert.equal(g.check('192.0.2.2').kind, 'pass', 'other addresses are not concerned');
    c.advance(59_500);
    assert.deepEqual(g.check('192.0.2.1'), { kind: 'locked', retryAfterSeconds: 1 });
    c.advance(500);
    assert.equal(g.check('192.0.2.1').kind, 'pass');
  });

  it('locks again at the next failure soon after a lockout; forgets after a quiet period; a right login clears', () => {
    const c = clock();
    const g = new SourceGuard({ failures: 3, lockoutSeconds: 10 }, { now: c.now });
    for (let i = 0; i < 3; i++) g.failed('a');
    c.advance(10_000);
    assert.equal(g.check('a').kind, 'pass');
    assert.ok(g.failed('a').lockedNow, 'one more wrong login right after a lockout starts the next');
    c.advance(20_000); // the lockout (10 s) and a quiet period (10 s)
    assert.deepEqual([g.failed('a').failures, g.check('a').kind], [1, 'pass']);
    g.failed('a');
    g.succeeded('a');
    assert.equal(g.failed('a').failures, 1, 'a right login forgets the failures');
  });

  it('keeps at most tableSize addresses, forgetting the one touched longest ago', () => {
    const g = new SourceGuard({ failures: 2, lockoutSeconds: 60 }, { tableSize: 3 });
    for (const a of ['a', 'b', 'c']) g.failed(a);
    g.failed('a'); // locks a, and touches it
    g.failed('d'); // b goes
    assert.equal(g.size, 3);
    assert.equal(g.check('a').kind, 'locked');
    assert.equal(g.failed('b').failures, 1, 'b was forgotten');
    for (let i = 0; i < 10_000; i++) g.failed(`x${i}`);
    assert.equal(g.size, 3);
    assert.equal(GUARD.tableSize, 4096);
  });

  it('does nothing when turned off', () => {
    const g = new SourceGuard({ failures: 0, lockoutSeconds: 60 });
    for (let i = 0; i < 100; i++) assert.deepEqual(g.failed('a'), { delayMs: 0, lockedNow: false, failures: 0 });
    assert.equal(g.check('a').kind, 'pass');
    assert.equal(g.size, 0);
  });

  it('counts IPv4 addresses as they are and IPv6 addresses by their /64', () => {
    assert.equal(addressKey('127.0.22.5'), '127.0.22.5');
    assert.equal(addressKey('::ffff:127.0.22.5'), '127.0.22.5');
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:DB8:1:2::7'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
  });
});

describe('the door\'s gate', () => {
  it('counts wrong logins, holds refusals back, locks out once with one log line, and admits the right login elsewhere', async () => {
    const { reader } = cluster({ '/live.ogg': ['src-live', 'right'] });
    const sab = statsBuffer(1, 8);
    const gate = new SourceGate({ reader, stats: new WorkerStats(sab, 0, 8), limits: { failures: 4, lockoutSeconds: 30 } });
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    const capture = (chunk: string): boolean => {
      lines.push(String(chunk));
      return true;
    };
    process.stderr.write = capture;
    try {
      const times: number[] = [];
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const t0 = Date.now();
        const a = await gate.admit('127.0.22.9', '/live.ogg', basic('source', 'wrong'));
        times.push(Date.now() - t0);
        statuses.push(a.kind === 'refuse' ? a.answer.status : 200);
      }
      assert.deepEqual(statuses, [401, 401, 401, 403, 403, 403]);
      assert.ok(times[2]! >= 450, `the third refusal is held back (${times[2]} ms)`);
      assert.ok(times[0]! < 100 && times[4]! < 100, 'the first and the locked-out ones are answered at once');
      const locked = await gate.admit('127.0.22.9', '/live.ogg', basic('source', 'right'));
      assert.equal(locked.kind === 'refuse' && locked.answer.status, 403, 'locked out even with the right password');
      if (locked.kind === 'refuse') assert.ok(locked.answer.headers.some(([k, v]) => k === 'Retry-After' && Number(v) > 0));
      assert.equal((await gate.admit('127.0.22.10', '/live.ogg', basic('source', 'right'))).kind, 'admit');
    } finally {
      process.stderr.write = write;
      gate.close();
    }
    assert.equal(lines.filter((l) => l.includes('127.0.22.9')).length, 1, `one log line for the lockout: ${lines.join('')}`);
    assert.match(lines.join(''), /source logins from 127\.0\.22\.9 refused for 30 s after 4 wrong/);
    assert.equal(sumStats(sab, 1, 8, S.SOURCE_AUTH_FAILURES), 4);
    assert.equal(sumStats(sab, 1, 8, S.SOURCE_LOCKED_OUT), 3);
  });

  it('drops a carried source when its password changes or its mount is deleted, and only that one', async () => {
    const { reader, publish } = cluster({ '/a.ogg': ['ua', 'pa'], '/b.ogg': ['ub', 'pb'] });
    const gate = new SourceGate({ reader, stats: new WorkerStats(statsBuffer(1, 8), 0, 8) });
    try {
      const dropped: string[] = [];
      for (const [m, u, p] of [['/a.ogg', 'ua', 'pa'], ['/b.ogg', 'ub', 'pb']] as const) {
        const a = await gate.admit('127.0.22.9', m, basic(u, p));
        assert.equal(a.kind, 'admit');
        if (a.kind === 'admit') gate.carry(a.mount, a.credential, () => dropped.push(m));
      }
      const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 700));
      publish({ '/a.ogg': ['ua', 'pa'], '/b.ogg': ['ub', 'pb'], '/c.ogg': ['uc', 'pc'] });
      await settle();
      assert.deepEqual(dropped, []);
      publish({ '/a.ogg': ['ua', 'new'], '/b.ogg': ['ub', 'pb'] });
      await settle();
      assert.deepEqual(dropped, ['/a.ogg']);
      publish({ '/a.ogg': ['ua', 'new'] });
      await settle();
      assert.deepEqual(dropped, ['/a.ogg', '/b.ogg']);
      assert.equal(gate.carried, 0);
    } finally {
      gate.close();
    }
  });
});

describe('the door carrying a source', () => {
  it('closes both sides when the mount\'s password changes, though the master keeps the source', async () => {
    // A stand-in for the master's Icecast that takes any source and never lets go: the one
    // behaviour a real Icecast no longer shows, since radiod tells it to drop such a source.
    const upstream: Socket[] = [];
    let received = '';
    const master = createServer((s) => {
      upstream.push(s);
      s.on('error', () => undefined);
      s.once('data', () => s.write('HTTP/1.0 200 OK\r\n\r\n'));
      s.on('data', (d: Buffer) => (received += d.toString('latin1')));
    });
    await new Promise<void>((res) => master.listen(0, '127.0.0.1', res));
    const { reader, publish } = cluster({ '/a.ogg': ['ua', 'pa'] }, 'a', { host: '127.0.0.1', port: (master.address() as AddressInfo).port });
    const stats = new WorkerStats(statsBuffer(1, 8), 0, 8);
    const door = new IcecastDoor({ reader, hubs: {} as Hubs, stats });
    const port = { pages: new Pages({ reader, nodeName: 'a', worker: 0, domain: 'radio.test', port: 8000, startedAt: '' }), router: new ListenRouter({ nodeName: 'a', proxy: true, port: 'icecast' }) };
    const front = createServer({ pauseOnConnect: true }, (s) => door.accept(s, port));
    await new Promise<void>((res) => front.listen(0, '127.0.0.1', res));
    const client = connect((front.address() as AddressInfo).port, '127.0.0.1');
    try {
      let answer = '';
      client.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      const closed = new Promise<number>((res) => client.on('close', () => res(Date.now())));
      // The door carries an Ogg source page by page (source-carry.ts): whole pages, then.
      client.write(Buffer.concat([
        Buffer.from(`SOURCE /a.ogg HTTP/1.0\r\nAuthorization: ${basic('source', 'pa')}\r\nContent-Type: application/ogg\r\n\r\n`),
        oggPage({ bos: true, granule: 0n, body: 30 }),
      ]));
      await waitFor(() => answer.startsWith('HTTP/1.0 200') && received.includes('OggS'), 3000, 'the source carried');
      assert.match(received, /^SOURCE \/a\.ogg HTTP\/1\.0\r\n/);
      client.write(oggPage({ granule: 960n, body: 40, fill: 0x6d }));
      await waitFor(() => received.includes('m'.repeat(40)), 3000, 'audio carried');
      const t0 = Date.now();
      publish({ '/a.ogg': ['ua', 'rotated'] });
      const ms = await Promise.race([closed.then((t) => t - t0), new Promise<number>((res) => setTimeout(() => res(Infinity), 3000))]);
      assert.ok(ms < 1500, `the source closed ${ms} ms after the snapshot changed`);
      await waitFor(() => upstream.every((s) => s.destroyed || s.readableEnded), 3000, 'the master side closed too');
    } finally {
      client.destroy();
      for (const s of upstream) s.destroy();
      front.close();
      master.close();
    }
  });
  it('closes a refused program that goes on sending, after its answer (a source that never reads would hang)', async () => {
    // A master's Icecast that takes the connection and closes it without a word (it is restarting).
    const master = createServer((s) => {
      s.on('error', () => undefined);
      s.once('data', () => s.destroy());
    });
    await new Promise<void>((res) => master.listen(0, '127.0.0.1', res));
    const { reader } = cluster({ '/a.ogg': ['ua', 'pa'] }, 'a', { host: '127.0.0.1', port: (master.address() as AddressInfo).port });
    const stats = new WorkerStats(statsBuffer(1, 8), 0, 8);
    const door = new IcecastDoor({ reader, hubs: {} as Hubs, stats });
    const port = { pages: new Pages({ reader, nodeName: 'a', worker: 0, domain: 'radio.test', port: 8000, startedAt: '' }), router: new ListenRouter({ nodeName: 'a', proxy: true, port: 'icecast' }) };
    const front = createServer({ pauseOnConnect: true }, (s) => door.accept(s, port));
    await new Promise<void>((res) => front.listen(0, '127.0.0.1', res));
    const programs: Socket[] = [];
    try {
      // Like ffmpeg's legacy SOURCE: the audio follows the head without waiting for an answer, and
      // the program only notices a refusal when a write fails. One is unanswered, one has a wrong password.
      for (const auth of [basic('source', 'pa'), basic('source', 'wrong')]) {
        // allowHalfOpen: a program that never reads does not answer the door's FIN with its own.
        const program = connect({ port: (front.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
        programs.push(program);
        program.on('error', () => undefined);
        let answer = '';
        program.on('data', (d: Buffer) => (answer += d.toString('latin1')));
        const closed = new Promise<boolean>((res) => {
          program.once('close', () => res(true));
          setTimeout(() => res(false), 6000);
        });
        program.write(`SOURCE /a.ogg HTTP/1.0\r\nAuthorization: ${auth}\r\nContent-Type: application/ogg\r\n\r\n`);
        const send = setInterval(() => program.writable && program.write(oggPage({ granule: 960n, body: 4000 })), 20);
        try {
          assert.ok(await closed, `the program's connection is closed after its answer (${JSON.stringify(answer.slice(0, 40))})`);
          assert.match(answer, /^HTTP\/1\.0 (503|401) /);
        } finally {
          clearInterval(send);
        }
      }
    } finally {
      for (const p of programs) p.destroy();
      front.close();
      master.close();
    }
  });
});

describe('sources the master\'s Icecast must drop', () => {
  const rec = (path: string, username: string, password: string, relay: string | null = null): MountRecord =>
    ({ path, username, password, relay, fallback: null, transcode: null, createdAt: '' });
  const map = (...r: MountRecord[]): Map<string, MountRecord> => new Map(r.map((m) => [m.path, m]));

  it('are those of mounts deleted or with a new user name or password, relays excepted', () => {
    const before = map(rec('/a', 'u', 'p'), rec('/b', 'u', 'p'), rec('/c', 'u', 'p'), rec('/d', 'u', 'p'), rec('/r', 'u', 'p', 'http://x/y'));
    const after = map(rec('/a', 'u', 'p'), rec('/b', 'u', 'q'), rec('/c', 'v', 'p'), rec('/e', 'u', 'p'));
    assert.deepEqual(credentialChanges(before, after), [{ path: '/b', why: 'changed' }, { path: '/c', why: 'changed' }, { path: '/d', why: 'deleted' }]);
  });

  it('are those of mounts kicked since, once per kick', () => {
    const kicked = (at: string | null): MountRecord => ({ ...rec('/k', 'u', 'p'), ...(at === null ? {} : { kickedAt: at }) });
    assert.deepEqual(credentialChanges(map(kicked(null)), map(kicked('2026-11-22T08:00:00.000Z'))), [{ path: '/k', why: 'kicked' }]);
    assert.deepEqual(credentialChanges(map(kicked('2026-11-22T08:00:00.000Z')), map(kicked('2026-11-22T08:05:00.000Z'))), [{ path: '/k', why: 'kicked' }]);
    assert.deepEqual(credentialChanges(map(kicked('2026-11-22T08:00:00.000Z')), map(kicked('2026-11-22T08:00:00.000Z'))), []);
  });

  it('at the door: a carried source that began before the kick\'s second ends goes, a later one stays', () => {
    const kick = 1_795_000_000;
    assert.equal(kickedSince(0, 5), false);
    assert.equal(kickedSince(kick, kick * 1000 - 60_000), true);
    assert.equal(kickedSince(kick, kick * 1000 + 999), true);
    assert.equal(kickedSince(kick, kick * 1000 + 1000), false);
  });

  it('judges a source older than the change by the start Icecast reports, to the second', () => {
    const at = Date.parse('2026-11-21T20:00:05.400Z');
    assert.ok(predates('2026-11-21T20:00:04+0000', at));
    assert.ok(predates('2026-11-21T20:00:05+0000', at), 'the same second counts as older');
    assert.ok(!predates('2026-11-21T20:00:06+0000', at));
    assert.ok(predates('', at), 'an unknown start counts as older');
  });

  it('asks Icecast to drop a source that predates the change, on the master only, once per pause, for a while', () => {
    const killed: string[] = [];
    const k = new SourceKiller({ host: '127.0.0.1', port: 1, adminPassword: 'x', kill: (m) => {
      killed.push(m);
      return Promise.resolve();
    } });
    const stats = (start: string): IcecastStats => ({
      listeners: 0,
      mounts: new Map([['/a', { listeners: 0, bytesRead: 0, bytesSent: 0, contentType: '', info: { ...NO_STREAM_INFO, streamStart: start } }]]),
    });
    const t = Date.parse('2026-11-21T20:00:05.400Z');
    k.sync([rec('/a', 'u', 'p')], t - 60_000);
    k.check(stats('2026-11-21T19:00:00+0000'), true, t);
    assert.deepEqual(killed, [], 'learning the mounts drops nothing');
    k.sync([rec('/a', 'u', 'q')], t);
    k.check(stats('2026-11-21T19:00:00+0000'), false, t + 10);
    assert.deepEqual(killed, [], 'a relay node has no source to drop');
    k.sync([rec('/a', 'u', 'p')], t);
    k.check(stats('2026-11-21T19:00:00+0000'), true, t + 100);
    k.check(stats('2026-11-21T19:00:00+0000'), true, t + 1100);
    assert.deepEqual(killed, ['/a'], 'stale statistics right after a kill are not a reason to kill again');
    k.check(stats('2026-11-21T20:00:07+0000'), true, t + 3000);
    assert.deepEqual(killed, ['/a'], 'a source that connected after the change stays');
    k.check(stats('2026-11-21T20:00:05+0000'), true, t + 4000);
    assert.deepEqual(killed, ['/a', '/a'], 'one that got in with the old password before Icecast re-read its configuration goes');
    k.check(stats('2026-11-21T19:00:00+0000'), true, t + 60_000);
    assert.equal(killed.length, 2, 'after a while the change is forgotten');
  });
});
