/**
 * Listeners on real loopback sockets fed by a hub's fan-out, where caught-up
 * sockets get each chunk through one batched send (native/fan-send): every
 * listener gets every byte in order, also one that stops reading until its
 * socket is full and then reads again (what send(2) could not take goes
 * through Node's stream); one that resets is let go; a TLS socket is never
 * written behind its TLS layer.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect as tlsConnect, createServer as tlsServer, type TLSSocket } from 'node:tls';
import { waitFor } from '../../../harness/net.ts';
import { fanSendUnavailable } from '../../../src/proxy/fan-send.ts';
import { Fanout } from '../../../src/proxy/fanout.ts';
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

/** A listener's socket that counts what the batched send did for it. */
class CountingSink extends SocketSink {
  direct = 0;
  short = 0;
  override afterDirect(c: Buffer, result: number): boolean {
    this.direct++;
    if (result !== c.length) this.short++;
    return super.afterDirect(c, result);
  }
}

/** Chunk i: `size` bytes of a pattern that tells its place in the stream. */
function chunk(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (i * 131 + k) & 0xff;
  return b;
}

describe('batched sends to listeners (fan-send)', () => {
  // scripts/setup.sh builds the addon; without it hubs write through Node's streams, which other tests cover.
  it('is built here', () => {
    assert.equal(fanSendUnavailable(), null);
  });

  const built = { skip: fanSendUnavailable() !== null };

  it('gives every listener every byte in order, one that stalls and resumes included', built, async () => {
    const { server, client, close } = await pairs(3);
    try {
      const fanout = new Fanout(64 << 20, () => undefined, () => undefined);
      const sinks = server.map((s) => new CountingSink(s));
      for (const s of sinks) fanout.add(s, null, false, fanout.ring.end, []);
      // Nothing queued in Node: the next write may go straight to the socket.
      for (const s of sinks) assert.ok(s.directFd() >= 0);
      const got = client.map(() => [] as Buffer[]);
      client.forEach((c, k) => c.on('data', (d: Buffer) => got[k]!.push(d)));
      client[2]!.pause(); // stops reading: its socket fills, send(2) takes part of a chunk, then nothing
      const sent: Buffer[] = [];
      for (let i = 0; i < 1600; i++) {
        const b = chunk(i, 8192);
        sent.push(b);
        fanout.append(b, true);
        // The readers keep up between turns: 64 KiB a turn fits what the kernel takes at once.
        if (i % 8 === 7) await new Promise((r) => setImmediate(r));
      }
      const total = sent.reduce((a, b) => a + b.length, 0);
      // 13 MB is more than the two sides' socket buffers hold: send(2) took part of a chunk or none, and Node queued the rest.
      assert.ok(sinks[2]!.short >= 1, 'a short send to the stalled listener');
      assert.ok(server[2]!.writableLength > 0, 'the rest queued in Node');
      assert.ok(sinks[0]!.direct >= 800, `most chunks sent in batches (${sinks[0]!.direct} of 1600)`);
      client[2]!.resume();
      await waitFor(() => got.every((g) => g.reduce((a, b) => a + b.length, 0) >= total), 20_000, 'every byte to every listener');
      const want = Buffer.concat(sent);
      for (const g of got) assert.ok(Buffer.concat(g).equals(want), 'the stream as sent');
      assert.deepEqual(sinks.map((s) => s.bytes), [total, total, total]);
    } finally {
      close();
    }
  });

  it('lets a listener that resets go and keeps serving the others', built, async () => {
    const { server, client, close } = await pairs(2);
    try {
      let left = 0;
      const fanout = new Fanout(1 << 20, () => undefined, () => undefined);
      const sinks = server.map((s) => new SocketSink(s));
      for (const s of sinks) fanout.add(s, null, false, fanout.ring.end, []);
      const closed = sinks.map(() => false);
      sinks.forEach((s, k) => {
        const before = s.onClose;
        s.onClose = () => {
          closed[k] = true;
          left++;
          before?.();
        };
      });
      let got = 0;
      client[1]!.on('data', (d: Buffer) => (got += d.length));
      client[0]!.resetAndDestroy();
      for (let i = 0; !closed[0] && i < 200; i++) {
        fanout.append(chunk(i, 1000), true);
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(closed[0], true, 'the reset listener was let go');
      assert.equal(left, 1);
      assert.equal(fanout.size, 1);
      const before = got;
      fanout.append(chunk(0, 1000), true);
      await waitFor(() => got >= before + 1000, 5000, 'the other listener still served');
    } finally {
      close();
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
        assert.equal(sink.directFd(), -1);
        const fanout = new Fanout(1 << 20, () => undefined, () => undefined);
        fanout.add(sink, null, false, fanout.ring.end, []);
        let got = 0;
        c.on('data', (d: Buffer) => (got += d.length));
        fanout.append(chunk(1, 5000), true);
        await waitFor(() => got === 5000, 5000, 'the chunk through TLS');
      } finally {
        c.destroy();
        srv.close();
      }
    });
  });
});
