/**
 * Listeners on real loopback sockets handed by a hub's fan-out to native
 * code (native/fan-send): every listener gets every byte in order, also one
 * that stops reading until its socket is full and then reads again; one that
 * resets, or lags past the ring, is let go and reported with its bytes; ICY
 * metadata comes every ICY_METAINT bytes as the JavaScript inserter puts
 * it; a TLS socket is never taken from Node; and when the thread that holds
 * the listeners ends, their connections end with it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect as tlsConnect, createServer as tlsServer, type TLSSocket } from 'node:tls';
import { Worker } from 'node:worker_threads';
import { waitFor } from '../../../harness/net.ts';
import { fanSendUnavailable } from '../../../src/proxy/fan-send.ts';
import { Fanout } from '../../../src/proxy/fanout.ts';
import { ICY_METAINT, IcyStripper } from '../../../src/proxy/icy.ts';
import type { Sink } from '../../../src/proxy/sink.ts';
import { SocketSink } from '../../../src/proxy/sink.ts';
/** Accepted and connecting ends of `n` loopback connections. */
async function pairs(n: number): Promise<{ server: Socket[]; client: Socket[]; close: () => void }> {
  const server: Socket[] = [];
  const srv = createServer((s) => {
    // A reset the kernel reports to Node's read before the batched send sees it must not crash the test.
    s.on('error', () => undefined);
    server.push(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const client = await Promise.all(Array.from({ length: n }, () => new Promise<Socket>((r) => {
    const c = connect(port, '127.0.0.1', () => r(c));
    c.on('error', () => undefined);
  })));
  await waitFor(() => server.length === n, 5000, 'connections accepted');
  return { server, client, close: () => { for (const s of [...server, ...client]) s.destroy(); srv.close(); } };
}

/** Chunk i: `size` bytes of a pattern that tells its place in the stream. */
function chunk(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (i * 131 + k) & 0xff;
  return b;
}

/** A listener that is not a socket (as uWS's are): served by the fan-out in JavaScript, its writes kept. */
function jsSink(): Sink & { got: Buffer[] } {
  const got: Buffer[] = [];
  return {
    got, write: (b) => (got.push(Buffer.from(b)), true), close: () => undefined, onDrain: null, onClose: null, closed: false, bytes: 0,
    ownableFd: () => -1, handedOver: () => assert.fail('not a socket'),
  };
}

const total = (bufs: Buffer[]): number => bufs.reduce((a, b) => a + b.length, 0);
const pause = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('listeners served by native code (fan-send)', () => {
  // scripts/setup.sh builds the addon; without it hubs write through Node's streams, which other tests cover.
  it('is built here', () => {
    assert.equal(fanSendUnavailable(), null);
  });

  const built = { skip: fanSendUnavailable() !== null };

  it('gives every listener its first bytes and then every byte in order, one that stalls and resumes included', built, async () => {
    const { server, client, close } = await pairs(3);
    try {
      let sentCount = 0;
      const fanout = new Fanout(64 << 20, (n) => (sentCount += n), () => undefined);
      const ended: number[] = [];
      const sinks = server.map((s) => new SocketSink(s, { streamed: (bytes) => ended.push(bytes) }));
      const header = Buffer.from('codec headers');
      const got = client.map(() => [] as Buffer[]);
      client.forEach((c, k) => c.on('data', (d: Buffer) => got[k]!.push(d)));
      for (const s of sinks) fanout.add(s, null, false, fanout.ring.end, [header]);
      // Handed over: Node's sockets are gone, the connections are not.
      assert.ok(server.every((s) => s.destroyed), 'Node let go of the sockets');
      assert.equal(fanout.size, 3);
      client[2]!.pause(); // stops reading: its socket fills, and native code waits for it to drain
      const sent: Buffer[] = [];
      for (let i = 0; i < 1600; i++) {
        const b = chunk(i, 8192);
        sent.push(b);
        fanout.append(b, true);
        if (i % 8 === 7) await pause();
      }
      const want = Buffer.concat([header, ...sent]);
      // 13 MB is more than the two sides' socket buffers hold: the stalled one is behind.
      assert.ok(total(got[2]!) < want.length / 2, 'the stalled listener is behind');
      client[2]!.resume();
      await waitFor(() => got.every((g) => total(g) >= want.length), 20_000, 'every byte to every listener');
      for (const g of got) assert.ok(Buffer.concat(g).equals(want), 'the stream as sent');
      for (let i = 0; i < 3 && sentCount < 3 * want.length; i++) fanout.append(Buffer.alloc(0), false);
      assert.equal(sentCount, 3 * want.length, 'every byte sent was counted');
      fanout.close();
      await waitFor(() => client.every((c) => c.readableEnded || c.destroyed), 5000, 'the connections closed by the hub');
      assert.deepEqual(ended, [want.length, want.length, want.length], 'each listener ended with its bytes');
    } finally {
      close();
    }
  });

  it('lets a listener that resets go, reports its bytes, and keeps serving the others', built, async () => {
    const { server, client, close } = await pairs(2);
    try {
      let empty = 0;
      const fanout = new Fanout(1 << 20, () => undefined, () => empty++);
      const ended: number[] = [];
      for (const s of server) fanout.add(new SocketSink(s, { streamed: (b) => ended.push(b) }), null, false, fanout.ring.end, []);
      let got = 0;
      client[1]!.on('data', (d: Buffer) => (got += d.length));
      fanout.append(chunk(0, 1000), true);
      await waitFor(() => got === 1000, 5000, 'the first chunk');
      client[0]!.resetAndDestroy();
      await waitFor(() => ended.length === 1, 5000, 'the reset listener let go');
      assert.equal(fanout.size, 1);
      assert.equal(empty, 0);
      fanout.append(chunk(1, 1000), true);
      await waitFor(() => got === 2000, 5000, 'the other listener still served');
      client[1]!.destroy();
      await waitFor(() => empty === 1, 5000, 'the last listener gone: the hub hears it');
      assert.deepEqual(ended, [1000, 2000]);
    } finally {
      close();
    }
  });

  it('lets go a listener that lags past the ring, as Icecast lets go a client past its queue', built, async () => {
    const { server, client, close } = await pairs(2);
    try {
      const fanout = new Fanout(256 << 10, () => undefined, () => undefined);
      const ended: number[] = [];
      for (const s of server) fanout.add(new SocketSink(s, { streamed: (b) => ended.push(b) }), null, false, fanout.ring.end, []);
      let got = 0;
      client[0]!.on('data', (d: Buffer) => (got += d.length));
      client[1]!.pause();
      let sent = 0;
      for (let i = 0; i < 2000 && ended.length === 0; i++) {
        fanout.append(chunk(i, 4096), true);
        sent += 4096;
        if (i % 8 === 7) await pause();
      }
      assert.equal(ended.length, 1, 'the lagging listener was let go');
      assert.ok(ended[0]! < sent, 'it had not had everything');
      assert.equal(fanout.size, 1);
      await waitFor(() => got === sent, 5000, 'the listener that kept up has every byte');
    } finally {
      close();
    }
  });

  it('puts ICY metadata every ICY_METAINT bytes as the JavaScript inserter does, across title changes', built, async () => {
    const { server, client, close } = await pairs(2);
    try {
      const fanout = new Fanout(4 << 20, () => undefined, () => undefined);
      const reference = jsSink();
      fanout.add(reference, null, true, fanout.ring.end, []);
      for (const s of server) fanout.add(new SocketSink(s), null, true, fanout.ring.end, []);
      assert.equal(fanout.size, 3);
      const got = client.map(() => [] as Buffer[]);
      client.forEach((c, k) => c.on('data', (d: Buffer) => got[k]!.push(d)));
      client[1]!.pause(); // this one gets its blocks after stalls, split wherever its socket filled
      const audio: Buffer[] = [];
      for (let i = 0; i < 600; i++) {
        if (i % 50 === 0) fanout.metadata = `StreamTitle='song ${i / 50} ${'x'.repeat(i)}';`;
        const b = chunk(i, 3000 + (i % 7) * 100);
        audio.push(b);
        fanout.append(b, true);
        if (i % 8 === 7) await pause();
      }
      const want = Buffer.concat(reference.got);
      await waitFor(() => total(got[0]!) >= want.length, 10_000, 'the caught-up listener');
      assert.ok(Buffer.concat(got[0]!).equals(want), 'byte for byte what the JavaScript inserter made');
      client[1]!.resume();
      // It missed titles while it stalled (it gets the one current when it reaches a metadata point): count its audio.
      const audioBytes = total(audio);
      await waitFor(() => new IcyStripper(ICY_METAINT).push(Buffer.concat(got[1]!)).length >= audioBytes, 10_000, 'the stalled listener');
      const stripper = new IcyStripper(ICY_METAINT);
      const plain = stripper.push(Buffer.concat(got[1]!));
      assert.ok(plain.equals(Buffer.concat(audio)), 'the stalled listener\'s audio, blocks taken out, is the stream');
      assert.equal(stripper.metadata, fanout.metadata, 'and its last block carries the last title');
      // The reference itself: the inserter's own output for the stream, as a check on the check.
      assert.ok(new IcyStripper(ICY_METAINT).push(want).equals(Buffer.concat(audio)));
    } finally {
      close();
    }
  });

  it('gives a listener joining late, its burst spanning several metadata points, the title once and then zero bytes, as the JavaScript inserter does', built, async () => {
    const { server, client, close } = await pairs(1);
    try {
      const fanout = new Fanout(4 << 20, () => undefined, () => undefined);
      fanout.add(jsSink(), null, true, fanout.ring.end, []); // keeps the hub's ring whole
      for (let i = 0; i < 40; i++) {
        if (i % 10 === 0) fanout.metadata = `StreamTitle='song ${i}';`;
        fanout.append(chunk(i, 3000), true);
      }
      // 60 kB back: four metadata points in the burst, all sent at once.
      const pos = fanout.ring.end - 60_000;
      const reference = jsSink();
      fanout.add(reference, null, true, pos, []);
      let got: Buffer[] = [];
      client[0]!.on('data', (d: Buffer) => got.push(d));
      fanout.add(new SocketSink(server[0]!), null, true, pos, []);
      assert.equal(fanout.nativeSize, 1);
      fanout.metadata = "StreamTitle='the next song';";
      for (let i = 40; i < 60; i++) fanout.append(chunk(i, 3000), true);
      const want = Buffer.concat(reference.got);
      await waitFor(() => total(got) >= want.length, 5000, 'the late listener\'s bytes');
      const mine = Buffer.concat(got);
      got = [];
      assert.equal(mine.length, want.length, 'as many bytes as the inserter made');
      assert.ok(mine.equals(want), 'and the same bytes');
    } finally {
      close();
    }
  });

  it('ends the listeners\' connections when the thread holding them ends', built, async () => {
    const got: Socket[] = [];
    const data: string[] = [];
    const ended: boolean[] = [];
    const srv = createServer((s) => {
      s.on('error', () => undefined);
      const k = got.push(s) - 1;
      data[k] = '';
      ended[k] = false;
      s.on('data', (d: Buffer) => (data[k] += d.toString()));
      s.on('end', () => (ended[k] = true));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    // The worker connects to this server and hands its ends to a fan-out: those are the listeners' sockets.
    const worker = new Worker(`
      const { connect } = require('node:net');
      const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const { Fanout } = await import(workerData.fanout);
        const { SocketSink } = await import(workerData.sink);
        const fanout = new Fanout(1 << 20, () => undefined, () => undefined);
        for (let i = 0; i < 3; i++) {
          const s = connect(workerData.port, '127.0.0.1');
          await new Promise((r) => s.once('connect', r));
          fanout.add(new SocketSink(s), null, false, fanout.ring.end, []);
        }
        fanout.append(Buffer.from('hello'), true);
        // Kept, as a hub keeps its fan-out, and the thread kept running, as a worker's loop is: only its end ends them.
        globalThis.fanout = fanout;
        setInterval(() => undefined, 1000);
        parentPort.postMessage(fanout.size);
      })();
    `, { eval: true, workerData: { port, fanout: new URL('../../../src/proxy/fanout.ts', import.meta.url).href, sink: new URL('../../../src/proxy/sink.ts', import.meta.url).href } });
    try {
      const size = await new Promise((r) => worker.once('message', r));
      assert.equal(size, 3);
      await waitFor(() => got.length === 3 && data.every((d) => d === 'hello'), 5000, 'the listeners served from the worker');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(ended, [false, false, false], 'the connections are open while the thread lives');
      await worker.terminate();
      await waitFor(() => ended.every(Boolean), 5000, 'every connection ended with the thread');
    } finally {
      for (const s of got) s.destroy();
      srv.close();
    }
  });

  describe('over TLS', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fan-send-tls-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('leaves the socket to Node (its bytes must be encrypted)', async () => {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=localhost'], { cwd: dir, stdio: 'ignore' });
      let accepted: TLSSocket | null = null;
      const srv = tlsServer({ key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) }, (s) => (accepted = s));
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const c = tlsConnect({ port: (srv.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
      try {
        await waitFor(() => accepted !== null, 5000, 'a TLS connection');
        const sink = new SocketSink(accepted!);
        assert.equal(sink.ownableFd(), -1);
        const fanout = new Fanout(1 << 20, () => undefined, () => undefined);
        fanout.add(sink, null, false, fanout.ring.end, []);
        let got = 0;
        c.on('data', (d: Buffer) => (got += d.length));
        fanout.append(chunk(1, 5000), true);
        await waitFor(() => got === 5000, 5000, 'the chunk through TLS');
        assert.equal(accepted!.destroyed, false, 'Node still holds the TLS socket');
      } finally {
        c.destroy();
        srv.close();
      }
    });
  });
});
