/**
 * SourceCarry in one process: a source program's connection, carried to an
 * upstream that goes away (two TCP servers on 127.0.0.1 play the part of
 * the old and the new master's Icecast, whose death cannot be produced on
 * demand in-process). The source's connection stays open; the new upstream
 * gets the request head again (without Expect), the Ogg header pages, then
 * the audio kept meanwhile, in order; a refusal from the first upstream
 * still ends the source, and one that closes unanswered gets the program a
 * 503; a source follows the master when the snapshot names another.
 *
 * A plain upload, once taken, is carried by native code (source-relay.ts):
 * every byte arrives in order through a full upstream, an upstream's death
 * and the program's end, and a worker thread that ends takes the relay's
 * descriptors with it.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { waitFor } from '../../../harness/net.ts';
import { HeadParser, type RequestHead } from '../../../src/proxy/http-head.ts';
import { SourceCarry, isOggSource, statusOf, type CarryOptions } from '../../../src/proxy/source-carry.ts';
import type { Target } from '../../../src/proxy/source-forward.ts';
import { passingRefusal } from '../../../src/proxy/icecast-door.ts';
import { SourceRelay, sourceRelayUnavailable } from '../../../src/proxy/source-relay.ts';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** An Ogg page: `bos` marks a stream's first page, granule 0 a header page. */
function page(serial: number, seq: number, granule: bigint, bos: boolean, body: string): Buffer {
  const data = Buffer.from(body);
  const h = Buffer.alloc(27 + 1);
  h.write('OggS', 0, 'latin1');
  h[5] = bos ? 2 : 0;
  h.writeBigInt64LE(granule, 6);
  h.writeUInt32LE(serial, 14);
  h.writeUInt32LE(seq, 18);
  h[26] = 1;
  h[27] = data.length;
  return Buffer.concat([h, data]);
}

interface FakeIcecast {
  server: Server;
  target: Target;
  got: () => Buffer;
  conns: Socket[];
}

/** A TCP server that answers a source's head with `answer` and keeps what it receives. */
async function fakeIcecast(name: string, answer: string): Promise<FakeIcecast> {
  const chunks: Buffer[] = [];
  const conns: Socket[] = [];
  const server = createServer((s) => {
    conns.push(s);
    let answered = false;
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      if (!answered && Buffer.concat(chunks).includes('\r\n\r\n')) {
        answered = true;
        s.write(answer);
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, conns, target: { name, host: '127.0.0.1', port }, got: () => Buffer.concat(chunks) };
}

/** A connected pair: the source program's end, and the door's end (paused, as the door hands it on). */
async function pair(): Promise<{ program: Socket; door: Socket; close: () => void }> {
  const server = createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const program = connect((server.address() as { port: number }).port, '127.0.0.1');
  const door = await accepted;
  server.close();
  return { program, door, close: () => program.destroy() };
}

const parse = (text: string): RequestHead => {
  const p = new HeadParser();
  const r = p.feed(Buffer.from(text));
  assert.equal(r.kind, 'head');
  return (r as { head: RequestHead }).head;
};

describe('carrying a source across upstreams', () => {
  const closers: (() => void)[] = [];
  after(() => {
    for (const c of closers) c();
  });
  /** A carrier for the door's end of a fresh connection from a source program, started on a connection to `first`. */
  const carried = async (first: FakeIcecast, o: Omit<CarryOptions, 'client' | 'rest'>): Promise<{ program: Socket; door: Socket; carry: SourceCarry }> => {
    const { program, door, close } = await pair();
    closers.push(close);
    const carry = new SourceCarry({ client: door, rest: Buffer.alloc(0), ...o });
    const up = connect(first.target.port, '127.0.0.1');
    await new Promise((r) => up.once('connect', r));
    carry.start(up, first.target);
    return { program, door, carry };
  };
  /**
   * Two stand-in Icecasts answering a source as given, and the carrier options of an MP3
   * source whose master the test moves from `a` to `b` by setting `master.target`.
   */
  const twoMasters = async (aAnswer: string, bAnswer: string): Promise<{ a: FakeIcecast; b: FakeIcecast; master: { target: Target }; talk: Omit<CarryOptions, 'client' | 'rest'> }> => {
    const a = await fakeIcecast('a', aAnswer);
    const b = await fakeIcecast('b', bAnswer);
    closers.push(() => a.server.close(), () => b.server.close());
    const master = { target: a.target };
    const talk = {
      head: parse('SOURCE /talk.mp3 ICE/1.0\r\nContent-Type: audio/mpeg\r\n\r\n'),
      upstreamHead: () => 'SOURCE /talk.mp3 ICE/1.0\r\n\r\n',
      findTarget: () => master.target,
    };
    return { a, b, master, talk };
  };

  it('keeps the source connected and sends the next upstream the head, the Ogg headers, then the audio kept meanwhile', async () => {
    const a = await fakeIcecast('a', 'HTTP/1.0 200 OK\r\n\r\n');
    const b = await fakeIcecast('b', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n');
    closers.push(() => a.server.close(), () => b.server.close());
    const head = parse('PUT /live.ogg HTTP/1.1\r\nContent-Type: application/ogg\r\nExpect: 100-continue\r\nIce-Name: test\r\n\r\n');
    let target: Target | null = a.target;
    const gaps: number[] = [];
    const { program, carry } = await carried(a, {
      head,
      upstreamHead: (t, again) => `PUT /live.ogg HTTP/1.1\r\nHost: ${t.host}:${t.port}\r\n${again ? '' : 'Expect: 100-continue\r\n'}\r\n`,
      findTarget: () => target,
      onResumed: (gap) => gaps.push(gap),
      limits: { retryMs: 50 },
    });
    const answer: Buffer[] = [];
    program.on('data', (d: Buffer) => answer.push(d));
    const headers = [page(7, 0, 0n, true, 'ident'), page(7, 1, 0n, false, 'comment')];
    for (const p of headers) program.write(p);
    program.write(page(7, 2, 100n, false, 'audio-1'));
    await waitFor(() => a.got().includes('audio-1'), 3000, 'the first upstream to get audio');
    assert.match(Buffer.concat(answer).toString(), /^HTTP\/1\.0 200 OK/, 'the first upstream answers the program');

    // The first upstream dies; no upstream for a moment, while the program goes on sending.
    target = null;
    for (const c of a.conns) c.destroy();
    a.server.close();
    await new Promise((r) => setTimeout(r, 200));
    program.write(page(7, 3, 200n, false, 'audio-2'));
    program.write(page(7, 4, 300n, false, 'audio-3'));
    await new Promise((r) => setTimeout(r, 200));
    target = b.target;
    await waitFor(() => b.got().includes('audio-3'), 3000, 'the next upstream to get the kept audio');
    program.write(page(7, 5, 400n, false, 'audio-4'));
    await waitFor(() => b.got().includes('audio-4'), 3000, 'and then the live audio');

    const got = b.got().toString('latin1');
    assert.ok(got.startsWith('PUT /live.ogg HTTP/1.1\r\n'), 'the request head again');
    assert.doesNotMatch(got, /Expect:/i, 'without Expect: the body is already flowing');
    const order = ['ident', 'comment', 'audio-2', 'audio-3', 'audio-4'].map((m) => got.indexOf(m));
    assert.ok(order.every((x, i) => x > 0 && (i === 0 || x > order[i - 1]!)), `headers, then the kept audio, then live, in order: ${order.join(',')}`);
    assert.ok(!got.includes('audio-1'), 'audio the old upstream had is not sent again');
    assert.equal(Buffer.concat(answer).toString().match(/HTTP\//g)?.length, 1, 'the program saw one answer only');
    assert.equal(program.destroyed, false, 'the source program is still connected');
    assert.equal(carry.resumes, 1);
    assert.ok(gaps[0]! >= 200, `gap ${gaps[0]} ms`);
    carry.close();
  });

  it('keeps only the newest audio within its bound while no upstream takes it', async () => {
    const a = await fakeIcecast('a', 'ICE/1.0 200 OK\r\n\r\n');
    const b = await fakeIcecast('b', 'HTTP/1.0 200 OK\r\n\r\n');
    closers.push(() => a.server.close(), () => b.server.close());
    let target: Target | null = a.target;
    const { program, carry } = await carried(a, {
      head: parse('SOURCE /talk.mp3 ICE/1.0\r\nContent-Type: audio/mpeg\r\n\r\n'),
      upstreamHead: () => 'SOURCE /talk.mp3 ICE/1.0\r\n\r\n',
      findTarget: () => target,
      limits: { retryMs: 50, bufferBytes: 4096 },
    });
    program.write('first');
    await waitFor(() => a.got().includes('first'), 3000, 'the first upstream');
    target = null;
    for (const c of a.conns) c.destroy();
    await new Promise((r) => setTimeout(r, 150));
    for (let i = 0; i < 20; i++) program.write(Buffer.alloc(1024, 0x30 + (i % 10)));
    program.write('newest');
    await new Promise((r) => setTimeout(r, 150));
    target = b.target;
    await waitFor(() => b.got().includes('newest'), 3000, 'the newest audio at the next upstream');
    const body = b.got().length - 'SOURCE /talk.mp3 ICE/1.0\r\n\r\n'.length;
    assert.ok(body <= 4096 + 1024 + 'newest'.length, `at most the bound was kept (${body} bytes)`);
    assert.equal(program.destroyed, false);
    carry.close();
  });

  it('ends the source when the first upstream refuses it, as before', async () => {
    const a = await fakeIcecast('a', 'HTTP/1.0 403 Forbidden\r\n\r\nMountpoint in use\n');
    closers.push(() => a.server.close());
    const { program } = await carried(a, {
      head: parse('SOURCE /live.ogg HTTP/1.0\r\n\r\n'),
      upstreamHead: () => 'SOURCE /live.ogg HTTP/1.0\r\n\r\n',
      findTarget: () => a.target,
      limits: { retryMs: 50 },
    });
    const answer: Buffer[] = [];
    program.on('data', (d: Buffer) => answer.push(d));
    program.on('error', () => undefined);
    await waitFor(() => Buffer.concat(answer).includes('403'), 3000, 'the refusal');
    for (const c of a.conns) c.destroy();
    const ended = await new Promise<boolean>((r) => {
      program.once('close', () => r(true));
      setTimeout(() => r(false), 2000);
    });
    assert.ok(ended, 'the program\'s connection is closed after a refusal');
    assert.equal(a.conns.length, 1, 'no second attempt');
  });

  it('answers the program 503 when the first upstream closes without an answer, and never retries it', async () => {
    // An Icecast that takes the connection and closes it unanswered (it is stopping, or restarting).
    const a = await fakeIcecast('a', '');
    closers.push(() => a.server.close());
    let unanswered = 0;
    let doorEnd: Socket | null = null;
    const { program, door } = await carried(a, {
      head: parse('SOURCE /live.ogg HTTP/1.0\r\n\r\n'),
      upstreamHead: () => 'SOURCE /live.ogg HTTP/1.0\r\n\r\n',
      findTarget: () => a.target,
      onUnanswered: () => {
        unanswered++;
        doorEnd?.end('HTTP/1.0 503 Service Unavailable\r\n\r\n');
      },
      limits: { retryMs: 50 },
    });
    doorEnd = door;
    const answer: Buffer[] = [];
    program.on('data', (d: Buffer) => answer.push(d));
    program.on('error', () => undefined);
    await waitFor(() => a.conns.length === 1, 3000, 'the upstream connection');
    for (const c of a.conns) c.destroy();
    await waitFor(() => Buffer.concat(answer).includes('503'), 3000, 'a 503 for the program');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(unanswered, 1);
    assert.equal(a.conns.length, 1, 'nothing carried on: the source was never taken');
  });

  it('moves the source to the new master when the snapshot names another one while the old Icecast lives on', async () => {
    const { a, b, master, talk } = await twoMasters('HTTP/1.0 200 OK\r\n\r\n', 'HTTP/1.0 200 OK\r\n\r\n');
    const { program, carry } = await carried(a, { ...talk, limits: { retryMs: 50, followMs: 100 } });
    program.write('before');
    await waitFor(() => a.got().includes('before'), 3000, 'the first upstream');
    master.target = b.target;
    await waitFor(() => a.conns.every((c) => c.destroyed || c.readableEnded) && b.conns.length === 1, 3000, 'the move to the new master');
    program.write('after');
    await waitFor(() => b.got().includes('after'), 3000, 'the audio at the new master');
    assert.ok(!a.got().includes('after'), 'nothing more to the old one');
    assert.equal(program.destroyed, false);
    carry.close();
  });

  it('holds the program through a passing refusal and answers it with the upstream that takes the source', async () => {
    // The new master's Icecast, still holding the mount for its relay of the old one.
    const { a, b, master, talk } = await twoMasters('HTTP/1.0 403 Forbidden\r\n\r\nMountpoint in use\n', 'HTTP/1.0 200 OK\r\n\r\n');
    const { program, carry } = await carried(a, { ...talk, holdRefusal: (status) => status === 403, limits: { retryMs: 50 } });
    const answer: Buffer[] = [];
    program.on('data', (d: Buffer) => answer.push(d));
    program.write('early');
    await waitFor(() => a.conns.length >= 2, 3000, 'a second try while the program waits');
    assert.equal(Buffer.concat(answer).length, 0, 'the program has heard nothing yet');
    master.target = b.target;
    await waitFor(() => Buffer.concat(answer).includes('200'), 3000, 'the answer of the upstream that took it');
    program.write('later');
    await waitFor(() => b.got().includes('later'), 3000, 'the audio at that upstream');
    assert.ok(b.got().includes('early'), 'what the program sent meanwhile was kept');
    assert.doesNotMatch(Buffer.concat(answer).toString(), /403/);
    carry.close();
  });

  it('tells Ogg sources and answers apart', () => {
    assert.equal(isOggSource(parse('PUT /a.mp3 HTTP/1.1\r\nContent-Type: application/ogg\r\n\r\n')), true);
    assert.equal(isOggSource(parse('SOURCE /a.opus HTTP/1.0\r\n\r\n')), true);
    assert.equal(isOggSource(parse('SOURCE /a HTTP/1.0\r\nContent-Type: audio/mpeg\r\n\r\n')), false);
    assert.equal(statusOf('HTTP/1.0 200 OK\r\n\r\n'), 200);
    assert.equal(statusOf('ICE/1.0 200 OK\r\n'), 200);
    assert.equal(statusOf('HTTP/1.1 100 Continue\r\n\r\n'), 100);
    assert.equal(statusOf('garbage'), 0);
  });

  it('holds a program through the refusals that pass, and only those', () => {
    // The door checked the login: an Icecast saying 401 has not loaded the mount or its new password yet.
    assert.equal(passingRefusal(401, false), true);
    assert.equal(passingRefusal(401, true), true);
    // "In use" with no source anywhere: a relay of a dead master's stream still holds the mount.
    assert.equal(passingRefusal(403, false), true);
    assert.equal(passingRefusal(403, true), false);
    for (const status of [400, 404, 500, 503]) assert.equal(passingRefusal(status, false), false);
  });
});

/** An upstream that answers 200 and keeps the body it gets after the head; `pause` stops it reading. */
interface Upstream {
  target: Target;
  body: () => Buffer;
  ended: () => boolean;
  conns: Socket[];
  close: () => void;
}

async function upstream(): Promise<Upstream> {
  const chunks: Buffer[] = [];
  const conns: Socket[] = [];
  let ended = false;
  let headLen = -1;
  const server = createServer((s) => {
    conns.push(s);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      if (headLen < 0) {
        const i = Buffer.concat(chunks).indexOf('\r\n\r\n');
        if (i >= 0) {
          headLen = i + 4;
          s.write('HTTP/1.0 200 OK\r\n\r\n');
        }
      }
    });
    s.on('end', () => (ended = true));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    target: { name: `u${port}`, host: '127.0.0.1', port },
    body: () => (headLen < 0 ? Buffer.alloc(0) : Buffer.concat(chunks).subarray(headLen)),
    ended: () => ended,
    conns,
    close: () => {
      for (const c of conns) c.destroy();
      server.close();
    },
  };
}

/** Writes `data` from `program` in pieces of 1..`max` bytes, waiting for drain, a pause now and then. */
async function feed(program: Socket, data: Buffer, max: number): Promise<void> {
  for (let at = 0, k = 0; at < data.length; k++) {
    const n = 1 + ((data[at]! * 131 + k) % max);
    if (!program.write(data.subarray(at, at + n))) await new Promise((r) => program.once('drain', r));
    at += n;
    if (k % 64 === 63) await new Promise((r) => setImmediate(r));
  }
}

describe('a plain upload carried by native code', { skip: sourceRelayUnavailable() ?? false }, () => {
  const closers: (() => void)[] = [];
  after(() => {
    for (const c of closers) c();
  });
  const mp3 = parse('SOURCE /talk.mp3 ICE/1.0\r\nContent-Type: audio/mpeg\r\n\r\n');
  /** `bufferBytes` large enough for the whole test stream: nothing kept between upstreams is let go. */
  const start = async (first: Target, findTarget: () => Target | null): Promise<{ program: Socket; carry: SourceCarry }> => {
    const { program, door, close } = await pair();
    closers.push(close);
    program.on('error', () => undefined);
    const carry = new SourceCarry({ client: door, rest: Buffer.alloc(0), head: mp3, upstreamHead: () => 'SOURCE /talk.mp3 ICE/1.0\r\n\r\n', findTarget, limits: { retryMs: 50, followMs: 100, bufferBytes: 64 << 20 } });
    const up = connect(first.port, '127.0.0.1');
    await new Promise((r) => up.once('connect', r));
    carry.start(up, first);
    return { program, carry };
  };
  /** Writes until the relay has the source: the first pieces go through JavaScript, until the upstream has answered. */
  const untilRelayed = async (program: Socket, carry: SourceCarry): Promise<Buffer> => {
    const sent: Buffer[] = [];
    await waitFor(() => {
      const b = randomBytes(300);
      sent.push(b);
      program.write(b);
      return carry.relayed;
    }, 3000, 'native code to carry the source', 20);
    return Buffer.concat(sent);
  };

  /** A source carried natively to `u`, which then stops reading; `early` is what was sent until the relay had it. */
  const relayedToStopped = async (u: Upstream, findTarget: () => Target | null = () => u.target): Promise<{ program: Socket; carry: SourceCarry; early: Buffer }> => {
    const { program, carry } = await start(u.target, findTarget);
    const early = await untilRelayed(program, carry);
    await waitFor(() => u.conns.length === 1, 3000, 'the upstream connection');
    u.conns[0]!.pause();
    return { program, carry, early };
  };

  it('carries every byte in order, and the program\'s end to the upstream', async () => {
    const u = await upstream();
    closers.push(u.close);
    const { program, carry } = await start(u.target, () => u.target);
    const early = await untilRelayed(program, carry);
    const data = randomBytes(3 << 20);
    await feed(program, data, 5000);
    assert.equal(carry.relayed, true, 'still in native code after 3 MiB');
    program.end();
    await waitFor(() => u.ended(), 5000, 'the upload\'s end at the upstream');
    assert.ok(u.body().equals(Buffer.concat([early, data])), `the upstream got exactly what was sent (${u.body().length} of ${early.length + data.length} bytes)`);
    assert.equal(carry.relayed, false);
  });

  it('holds what a full upstream cannot take, and carries on in order once it reads again', async () => {
    const u = await upstream();
    closers.push(u.close);
    const { program, carry, early } = await relayedToStopped(u);
    const data = randomBytes(12 << 20);
    const fed = feed(program, data, 60_000);
    // Long enough for every buffer on the way to fill: the program's writes wait.
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(u.body().length < early.length + data.length, 'the upstream is full');
    assert.equal(carry.relayed, true, 'native code holds on through a full upstream');
    u.conns[0]!.resume();
    await fed;
    program.end();
    await waitFor(() => u.ended(), 10_000, 'the upload\'s end at the upstream');
    assert.ok(u.body().equals(Buffer.concat([early, data])), `every byte, in order (${u.body().length} of ${early.length + data.length})`);
  });

  it('gives the bytes back when the upstream dies, and the next upstream gets the rest in order', async () => {
    const a = await upstream();
    const b = await upstream();
    closers.push(a.close, b.close);
    let target: Target | null = a.target;
    const { program, carry } = await start(a.target, () => target);
    const early = await untilRelayed(program, carry);
    const before = randomBytes(200_000);
    await feed(program, before, 3000);
    // The old master's Icecast dies while the relay has the source; the next master takes it a moment later.
    target = null;
    a.close();
    await waitFor(() => !carry.relayed, 3000, 'native code to give the source back');
    const during = randomBytes(50_000);
    await feed(program, during, 3000);
    target = b.target;
    await waitFor(() => b.body().length > 0, 3000, 'the next upstream');
    const after_ = randomBytes(200_000);
    await feed(program, after_, 3000);
    await waitFor(() => carry.relayed, 3000, 'native code to carry the source again');
    program.end();
    await waitFor(() => b.ended(), 5000, 'the end at the next upstream');
    const all = Buffer.concat([early, before, during, after_]);
    const atA = a.body();
    const atB = b.body();
    assert.ok(all.subarray(0, atA.length).equals(atA), 'the first upstream got a beginning of the stream');
    assert.ok(all.subarray(all.length - atB.length).equals(atB), 'the next upstream got the rest of it, in order, to its end');
    assert.ok(atB.length >= during.length + after_.length, 'with everything sent while no upstream took it');
    assert.equal(carry.resumes, 1);
  });

  it('moves to a new master without losing or repeating a byte the full old upstream had not taken', async () => {
    const a = await upstream();
    const b = await upstream();
    closers.push(a.close, b.close);
    let target: Target = a.target;
    const { program, carry, early } = await relayedToStopped(a, () => target);
    const data = randomBytes(12 << 20);
    const fed = feed(program, data, 60_000);
    await new Promise((r) => setTimeout(r, 500));
    // The master moves while native code holds bytes the old one has no room for: they go to the new one.
    target = b.target;
    await waitFor(() => b.conns.length === 1, 3000, 'the move to the new master');
    a.conns[0]!.resume();
    await fed;
    // A program that ends before any upstream has taken it again ends its source: wait for the new one.
    await waitFor(() => carry.resumes === 1, 5000, 'the new master to take the source');
    program.end();
    await waitFor(() => b.ended() && a.ended(), 10_000, 'both upstreams to see their end');
    const all = Buffer.concat([early, data]);
    const atA = a.body();
    assert.ok(atA.length < all.length, 'the old upstream did not get everything');
    assert.ok(Buffer.concat([atA, b.body()]).equals(all), `the old upstream's bytes and then the new one's are the stream, exactly (${atA.length} + ${b.body().length} of ${all.length})`);
  });

  it('gives back what it holds, ahead of the rest, when the program resets while the upstream is full', async () => {
    const u = await upstream();
    closers.push(u.close);
    const { program, carry, early } = await relayedToStopped(u);
    // More than every buffer on the way holds: Node keeps the rest on the program's side.
    const data = randomBytes(16 << 20);
    program.write(data);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(carry.relayed, true, 'native code holds bytes the upstream has no room for');
    // The program's connection is reset with bytes queued on both sides of the relay.
    program.resetAndDestroy();
    await waitFor(() => !carry.relayed, 3000, 'native code to give the source back');
    u.conns[0]!.resume();
    await waitFor(() => u.conns[0]!.readableEnded || u.conns[0]!.destroyed, 5000, 'the upstream connection to end with the source');
    const all = Buffer.concat([early, data]);
    const got = u.body();
    assert.ok(got.length > early.length, 'the upstream got audio');
    assert.ok(all.subarray(0, got.length).equals(got), `what the upstream got is the stream from its start, nothing replaced or out of order (${got.length} bytes)`);
  });

  it('ends with the worker thread that runs it: no connection is left open by the relay', async () => {
    const ends: boolean[] = [];
    const socks: Socket[] = [];
    const got: string[] = [];
    const srv = createServer((s) => {
      s.on('error', () => undefined);
      const k = socks.push(s) - 1;
      ends[k] = false;
      got[k] = '';
      s.on('data', (d: Buffer) => (got[k] += d.toString()));
      s.on('end', () => (ends[k] = true));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    // The worker's two connections play the program's and the upstream's; the relay carries from one to the other.
    const worker = new Worker(`
      const { connect } = require('node:net');
      const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const { SourceRelay } = await import(workerData.relay);
        const open = async () => { const s = connect(workerData.port, '127.0.0.1'); await new Promise((r) => s.once('connect', r)); return s; };
        const program = await open();
        const up = await open();
        program.on('data', () => undefined);
        globalThis.relay = SourceRelay.start(program, up, () => undefined);
        setInterval(() => undefined, 1000);
        parentPort.postMessage(globalThis.relay !== null);
      })();
    `, { eval: true, workerData: { port, relay: new URL('../../../src/proxy/source-relay.ts', import.meta.url).href } });
    try {
      assert.equal(await new Promise((r) => worker.once('message', r)), true, 'the relay started');
      await waitFor(() => socks.length === 2, 5000, 'both connections');
      socks[0]!.write('hello');
      await waitFor(() => got[1] === 'hello', 5000, 'the bytes carried by the relay in the worker');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(ends, [false, false], 'open while the thread lives');
      await worker.terminate();
      await waitFor(() => ends.every(Boolean), 5000, 'both connections ended with the thread');
    } finally {
      for (const s of socks) s.destroy();
      srv.close();
    }
  });

  it('is not offered what it cannot take', async () => {
    const { program, door, close } = await pair();
    closers.push(close);
    const u = await upstream();
    closers.push(u.close);
    const up = connect(u.target.port, '127.0.0.1');
    await new Promise((r) => up.once('connect', r));
    assert.equal(SourceRelay.start(door, up, () => undefined), null, 'a paused socket (not reading) stays with Node');
    door.resume();
    await new Promise((r) => setImmediate(r));
    up.cork();
    up.write('x');
    assert.equal(SourceRelay.start(door, up, () => undefined), null, 'an upstream with bytes queued in Node stays with Node');
    up.uncork();
    await waitFor(() => up.writableLength === 0, 3000, 'the queued byte sent');
    const relay = SourceRelay.start(door, up, () => undefined);
    assert.notEqual(relay, null, 'and once neither has anything of its own waiting, native code takes them');
    assert.equal(relay!.take().length, 0, 'given back with nothing read');
    up.destroy();
    program.destroy();
  });
});
