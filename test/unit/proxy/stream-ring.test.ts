/** The ring a hub keeps of its stream, and the coalescing of frame streams. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamRing } from '../../../src/proxy/stream-ring.ts';
import { Hub } from '../../../src/proxy/hub.ts';
import { Coalescer, CROWD_BYTES, CROWD_MS, FEW_MS, FEW_PIECES, holdOf } from '../../../src/proxy/coalescer.ts';

test('the ring keeps whole chunks back to its size and says which positions are lost', () => {
  const ring = new StreamRing(1000);
  for (let i = 0; i < 10; i++) ring.push(Buffer.alloc(300, i), true);
  assert.equal(ring.end, 3000);
  // 300 * 4 = 1200 >= 1000 but dropping one more would leave 900 < 1000.
  assert.deepEqual(ring.chunks.map((c) => c.off), [1800, 2100, 2400, 2700]);
  assert.equal(ring.lost(1799), true);
  assert.equal(ring.lost(1800), false);
  assert.equal(ring.indexOf(2099), 0);
  assert.equal(ring.indexOf(2100), 1);
  assert.equal(ring.indexOf(3000), -1);
  ring.clear();
  assert.equal(ring.lost(0), false);
});

test('a new listener starts on a page boundary, or on an MP3 frame sync', () => {
  const pages = new StreamRing(10_000);
  pages.push(Buffer.alloc(100), true);
  pages.push(Buffer.alloc(100), false);
  pages.push(Buffer.alloc(100), true);
  assert.equal(pages.startAt(0, true), 0);
  assert.equal(pages.startAt(50, true), 200);
  assert.equal(pages.startAt(250, true), 300, 'no boundary after: the end');

  const frames = new StreamRing(10_000);
  const a = Buffer.alloc(100);
  a[40] = 0xff;
  a[41] = 0xfb;
  frames.push(a, false);
  frames.push(Buffer.alloc(100), false);
  assert.equal(frames.startAt(10, false), 40);
  assert.equal(frames.startAt(41, false), 200, 'no sync after: the end');
});

test('pieces in a crowd are held until enough bytes or time, and a start goes out at once', async () => {
  const out: number[] = [];
  const c = new Coalescer((b) => out.push(b.length));
  c.push(Buffer.alloc(400), true);
  assert.deepEqual(out, [400]);
  for (let i = 0; i < 40; i++) c.push(Buffer.alloc(400), false);
  assert.deepEqual(out, [400], `nothing yet below ${CROWD_BYTES} bytes`);
  c.push(Buffer.alloc(400), false);
  assert.deepEqual(out, [400, 16400]);
  c.push(Buffer.alloc(100), false);
  await new Promise((r) => setTimeout(r, CROWD_MS + 50));
  assert.deepEqual(out, [400, 16400, 100], 'released after the delay');
  c.push(Buffer.alloc(100), false);
  c.stop();
  c.push(Buffer.alloc(100), false);
  await new Promise((r) => setTimeout(r, CROWD_MS + 50));
  assert.deepEqual(out, [400, 16400, 100], 'nothing after stop');
});

test('a hub holds pieces longer the more listen: none for a few, two frames for hundreds, a second for a crowd', async () => {
  const none = { pieces: 1, bytes: 0, ms: 0 };
  assert.deepEqual(holdOf(1), none);
  assert.deepEqual(holdOf(63), none);
  assert.equal(FEW_PIECES, 2);
  assert.deepEqual(holdOf(64), { pieces: 2, bytes: 4096, ms: FEW_MS });
  assert.deepEqual(holdOf(500), { pieces: 2, bytes: 4096, ms: FEW_MS });
  assert.deepEqual(holdOf(500, true), none, 'Ogg pages are not held below a crowd');
  const mid = holdOf(1500);
  assert.ok(mid.pieces === Infinity && mid.ms > FEW_MS && mid.ms < CROWD_MS && mid.bytes > 4096 && mid.bytes < CROWD_BYTES);
  assert.deepEqual(holdOf(1500, true), mid, 'pages in a crowd as frames');
  assert.deepEqual(holdOf(2500), { pieces: Infinity, bytes: CROWD_BYTES, ms: CROWD_MS });
  assert.deepEqual(holdOf(100_000), { pieces: Infinity, bytes: CROWD_BYTES, ms: CROWD_MS });
  const out: number[] = [];
  let listeners = 10;
  const c = new Coalescer((b) => out.push(b.length), () => holdOf(listeners));
  c.push(Buffer.alloc(400), false);
  assert.deepEqual(out, [400], 'a hub of ten passes frames on at once');
  listeners = 500;
  c.push(Buffer.alloc(400), false);
  assert.deepEqual(out, [400], 'held yet');
  c.push(Buffer.alloc(400), false);
  assert.deepEqual(out, [400, 800], 'a hub of 500 writes every second piece');
  c.push(Buffer.alloc(300), false);
  assert.deepEqual(out, [400, 800], 'held yet');
  await new Promise((r) => setTimeout(r, FEW_MS + 30));
  assert.deepEqual(out, [400, 800, 300], `and a piece alone waits at most ${FEW_MS} ms`);
  c.stop();
});

test('a hub whose mount is already gone closes at once and leaves no timer behind', async () => {
  let closed = 0;
  const hub = new Hub({ path: '/gone.ogg', burstBytes: 1024, queueBytes: 4096, targets: () => [], exists: () => false, onClosed: () => closed++ });
  assert.equal(hub.closed, true);
  assert.equal(closed, 1);
  // A timer left running would keep this test's process alive past its end (node --test reports it).
  await new Promise((r) => setTimeout(r, 10));
});
