/**
 * The HTTP front of both public ports under attack, on real radiod nodes:
 * 127.0.23.1 with the default limits and a live mount, 127.0.23.2 with
 * small limits and one worker, one etcd. Requests that end or abandon uWS
 * responses in every order, heads trickled a byte at a time, connection
 * floods past the cap, floods from one address, hundreds of listeners
 * behind one address, and a fuzz run of random and mutated requests. After
 * each, through underAttack: no worker died, radiod's RSS grew by less than
 * 64 MiB, and an ordinary client (another address) is served.
 *
 * Attacking connections come from addresses in 127.0.23.0/24, so that the
 * per-address limits meet them and not the ordinary client (127.0.0.1).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/net.ts';
import { DOOR_LIMITS } from '../src/proxy/icecast-door.ts';
import { rssBytes, underAttack } from '../harness/attack.ts';
import { createMount, startEtcd, startRadiod, type Creds, type Etcd, type Radiod } from '../harness/components.ts';
import { KeepSource, ffmpegSource, icecastUrl } from '../harness/stream.ts';

const TTL = 3;
const WRONG = `Basic ${Buffer.from('source:wrong').toString('base64')}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw connection from a chosen local address, keeping what it receives and when the server closed it. */
class Raw {
  readonly sock: Socket;
  readonly openedAt = Date.now();
  closedAt = 0;
  #chunks: Buffer[] = [];
  bytes = 0;
  /** We destroyed it ourselves (as opposed to the server closing it). */
  dropped = false;
  readonly closed: Promise<void>;
  readonly connected: Promise<boolean>;

  constructor(host: string, port: number, from: string, keep = 1 << 16) {
    this.sock = connect({ host, port, localAddress: from });
    this.sock.on('error', () => undefined);
    this.sock.on('data', (d: Buffer) => {
      this.bytes += d.length;
      if (this.bytes - d.length < keep) this.#chunks.push(d);
    });
    this.closed = new Promise((r) => this.sock.once('close', () => {
      this.closedAt = Date.now();
      r();
    }));
    this.connected = new Promise((r) => {
      this.sock.once('connect', () => r(true));
      this.sock.once('close', () => r(false));
    });
  }

  text(): string {
    return Buffer.concat(this.#chunks).toString('latin1');
  }

  write(s: string | Buffer): void {
    if (!this.sock.destroyed) this.sock.write(s);
  }

  /** Waits until the received text matches, the connection closes, or `ms`. */
  async until(re: RegExp, ms = 5000): Promise<boolean> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (re.test(this.text())) return true;
      if (this.closedAt) return re.test(this.text());
      await sleep(10);
    }
    return false;
  }

  drop(): void {
    if (!this.closedAt) this.dropped = true;
    this.sock.destroy();
  }

  get serverClosed(): boolean {
    return this.closedAt > 0 && !this.dropped;
  }
}

/** Seeded random numbers (mulberry32), so that a failing fuzz run can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('the HTTP front under attack', () => {
  let etcd: Etcd;
  let a: Radiod;
  let b: Radiod;
  const nodes: Radiod[] = [];
  const sources: KeepSource[] = [];
  const open: Raw[] = [];
  const raw = (n: Radiod, port: number, from: string, keep?: number): Raw => {
    const r = new Raw(n.host, port, from, keep);
    open.push(r);
    return r;
  };
  const ports = (n: Radiod): [string, number][] => [['HTTP_PORT', n.httpPort], ['ICECAST_PORT', n.icecastPort]];
  /** Drops every attacking connection still open. */
  const dropAll = (): void => {
    for (const r of open.splice(0)) r.drop();
  };

  before(async () => {
    etcd = await startEtcd('127.0.23.1');
    a = await startRadiod({ name: 'a', host: '127.0.23.1', etcd: etcd.url, leaseTtl: TTL, workers: 2 });
    nodes.push(a);
    await waitFor(async () => (await a.health()).body.icecast === 'ready', 15_000, 'a ready as master');
    // Small limits, one worker: the shares are the settings themselves.
    b = await startRadiod({
      name: 'b', host: '127.0.23.2', etcd: etcd.url, leaseTtl: TTL, workers: 1,
      extraArgs: ['--max-connections', '200', '--client-pending', '40', '--client-conn-rate', '20'],
    });
    nodes.push(b);
    await waitFor(async () => (await b.health()).body.icecast === 'ready', 15_000, 'b ready');
    const live: Creds = await createMount(etcd.url, ['create-mount', '/fuzz.ogg']);
    await createMount(etcd.url, ['create-mount', '/idle.ogg']); // a mount without a source: listeners wait, then 503
    sources.push(new KeepSource(() => ffmpegSource(icecastUrl(live.username, live.password, a.host, a.icecastInternalPort, '/fuzz.ogg'))));
    for (const n of nodes) {
      await waitFor(async () => {
        const r = raw(n, n.icecastPort, '127.0.23.3');
        r.write('GET /fuzz.ogg HTTP/1.0\r\n\r\n');
        await r.until(/OggS/, 1500);
        r.drop();
        return r.text().includes('OggS');
      }, 30_000, `/fuzz.ogg live on ${n.name}`, 200);
    }
  });
  after(async () => {
    dropAll();
    for (const s of sources) await s.stop();
    for (const n of nodes) await n.stop();
    await etcd?.stop();
  });

  it('never touches a uWS response after it ended or was aborted, on both ports (bodies after answers, aborts mid-stream and during a pending wait)', async (t) => {
    const from = '127.0.23.10';
    const keepAlive = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
    /** Each sequence starts on a fresh connection; most first get a kept-alive uWS connection with a short request. */
    const sequences: Record<string, (port: number) => Promise<void>> = {
      'chunked PUT with a wrong password, more body after the answer (kept-alive uWS)': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write(`PUT /fuzz.ogg HTTP/1.1\r\nHost: x\r\nAuthorization: ${WRONG}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/ogg\r\n\r\n5\r\nhello\r\n`);
        await r.until(/HTTP\/1\.1 4\d\d[^]*HTTP\/1\.1 4\d\d|HTTP\/1\.1 405/, 2000);
        for (let i = 0; i < 5; i++) {
          r.write('5\r\nworld\r\n');
          await sleep(20);
        }
        r.write(`0\r\n\r\n${keepAlive}`);
        await r.until(/"worker"[^]*"worker"/, 1000);
        r.drop();
      },
      'chunked PUT with a wrong password, more body after the answer (door)': async (port) => {
        const r = raw(a, port, from);
        r.write(`PUT /fuzz.ogg HTTP/1.1\r\nHost: x\r\nAuthorization: ${WRONG}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n`);
        await r.until(/HTTP\/1\.[01] [14]\d\d/, 3000);
        for (let i = 0; i < 5; i++) r.write('5\r\nworld\r\n');
        r.write('0\r\n\r\nGARBAGE');
        await sleep(300);
        r.drop();
      },
      'SOURCE with a wrong password and a body after the answer': async (port) => {
        const r = raw(a, port, from);
        r.write(`SOURCE /fuzz.ogg ICE/1.0\r\nAuthorization: ${WRONG}\r\nContent-Type: application/ogg\r\n\r\nOggS\0\x02${'x'.repeat(3000)}`);
        await r.until(/ 40\d/, 6000);
        r.write('y'.repeat(5000));
        await sleep(50);
        r.drop();
      },
      'POST with a body in pieces, answered before the body ends (kept-alive uWS)': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write('POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nhello');
        await r.until(/405/, 1000);
        r.write('world, and more of it than announced');
        r.write(keepAlive);
        await sleep(100);
        r.drop();
      },
      'a stream on a kept-alive uWS connection, aborted mid-stream': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write('GET /fuzz.ogg HTTP/1.1\r\nHost: x\r\nIcy-MetaData: 1\r\n\r\n');
        await r.until(/OggS/, 3000);
        r.drop();
      },
      'a stream on a kept-alive uWS connection, another request pipelined during it': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write('GET /fuzz.ogg HTTP/1.1\r\nHost: x\r\n\r\n');
        await r.until(/OggS/, 3000);
        r.write(`${keepAlive}${keepAlive}`);
        await sleep(200);
        r.drop();
      },
      'a stream on a kept-alive uWS connection the client half-closes': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write('GET /fuzz.ogg HTTP/1.1\r\nHost: x\r\n\r\n');
        await r.until(/OggS/, 3000);
        r.sock.end();
        await sleep(200);
        r.drop();
      },
      'a stream on a kept-alive uWS connection that stops reading, then aborts': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write('GET /fuzz.ogg HTTP/1.1\r\nHost: x\r\n\r\n');
        await r.until(/OggS/, 3000);
        r.sock.pause();
        await sleep(1500);
        r.drop();
      },
      'a mount without a source on a kept-alive uWS connection, aborted while the hub waits': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write('GET /idle.ogg HTTP/1.1\r\nHost: x\r\n\r\n');
        await sleep(300);
        r.drop();
      },
      'a mount without a source on a kept-alive uWS connection, answered 503 after the wait, then more requests': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write('GET /idle.ogg HTTP/1.1\r\nHost: x\r\n\r\n');
        await r.until(/503/, 6000);
        r.write(`${keepAlive}HEAD /idle.ogg HTTP/1.1\r\nHost: x\r\n\r\n`);
        await sleep(300);
        r.drop();
      },
      'HEAD of a stream on a kept-alive uWS connection, then more requests': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write(`HEAD /fuzz.ogg HTTP/1.1\r\nHost: x\r\n\r\n${keepAlive}`);
        await r.until(/"worker"[^]*200 OK[^]*"worker"/, 3000);
        r.write('GET /fuzz.ogg HTTP/1.1\r\nHost: x\r\n\r\n');
        await r.until(/OggS/, 3000);
        r.drop();
      },
      'a stream asked for with a chunked body on a kept-alive uWS connection': async (port) => {
        const r = raw(a, port, from);
        r.write(keepAlive);
        await r.until(/"worker"/);
        r.write('GET /fuzz.ogg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
        await sleep(200);
        r.write('zz\r\nnot a chunk\r\n');
        await sleep(100);
        r.drop();
      },
      'a title update with a wrong password and a body after it, kept-alive uWS and door': async (port) => {
        for (const first of [keepAlive, '']) {
          const r = raw(a, port, from);
          if (first) {
            r.write(first);
            await r.until(/"worker"/);
          }
          r.write(`GET /admin/metadata?mount=/fuzz.ogg&mode=updinfo&song=x HTTP/1.1\r\nHost: x\r\nAuthorization: ${WRONG}\r\nContent-Length: 4\r\n\r\nbodyEXTRA`);
          await r.until(/ 40\d/, 6000);
          r.write('more');
          r.drop();
        }
      },
      'a door stream aborted, and HEAD of it, in HTTP/1.0': async (port) => {
        const r = raw(a, port, from);
        r.write('GET /fuzz.ogg HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n');
        await r.until(/OggS/, 3000);
        r.drop();
        const h = raw(a, port, from);
        h.write('HEAD /fuzz.ogg HTTP/1.0\r\n\r\n');
        await h.until(/\r\n\r\n/, 3000);
        h.drop();
      },
      'a preflight with a body, then a stream aborted at once': async (port) => {
        const r = raw(a, port, from);
        r.write('OPTIONS /fuzz.ogg HTTP/1.1\r\nHost: x\r\nOrigin: http://o\r\nAccess-Control-Request-Method: GET\r\nContent-Length: 3\r\n\r\nabcdef');
        await r.until(/Access-Control/i, 1000);
        r.write('GET /fuzz.ogg HTTP/1.1\r\nHost: x\r\n\r\n');
        r.drop();
      },
    };
    let runs = 0;
    await underAttack('responses ended or abandoned in every order', a, async () => {
      for (let round = 0; round < 3; round++) {
        await Promise.all(Object.entries(sequences).flatMap(([name, run]) => ports(a).map(async ([portName, port]) => {
          await run(port);
          runs++;
          t.diagnostic(`round ${round}: ${name} on ${portName}`);
        })));
      }
      dropAll();
      await sleep(500);
      return `${runs} sequences (${Object.keys(sequences).length} kinds x 2 ports x 3 rounds)`;
    }, { mount: '/fuzz.ogg' });
  });

  it('closes a head that trickles in, on both ports, at the head deadline counted from accept', async (t) => {
    const limit = DOOR_LIMITS.headerTimeoutMs;
    const kinds: [string, (r: Raw) => void][] = [
      ['nothing sent', () => undefined],
      ['an HTTP/1.1 line then headers, a byte every 250 ms', (r) => trickle(r, 'GET /health HTTP/1.1\r\nHost: x\r\n')],
      ['an HTTP/1.0 line then headers, a byte every 250 ms', (r) => trickle(r, 'GET /health HTTP/1.0\r\n')],
      ['an HTTP/1.1 line at once, then headers a byte every 250 ms', (r) => {
        r.write('GET /status-json.xsl HTTP/1.1\r\n');
        trickle(r, 'Host: x\r\n');
      }],
      ['a stream\'s line at once, then headers a byte every 250 ms', (r) => {
        r.write('GET /fuzz.ogg HTTP/1.0\r\n');
        trickle(r, 'User-Agent: slow\r\n');
      }],
    ];
    const timers: NodeJS.Timeout[] = [];
    function trickle(r: Raw, start: string): void {
      let i = 0;
      const text = `${start}${'X-Slow: yes\r\n'.repeat(100)}`;
      const tick = (): void => {
        if (r.closedAt || i >= text.length) return;
        r.write(text[i++]!);
        timers.push(setTimeout(tick, 250));
      };
      tick();
    }
    const perKind = 40;
    await underAttack('slowloris on both ports', a, async () => {
      const held: Raw[][] = kinds.map(() => []);
      for (const [, port] of ports(a)) {
        for (let i = 0; i < perKind * kinds.length; i++) {
          const k = i % kinds.length;
          const r = raw(a, port, `127.0.23.${20 + (i % 20)}`);
          held[k]!.push(r);
          void r.connected.then((ok) => ok && kinds[k]![1](r));
        }
      }
      const all = held.flat();
      await waitFor(() => all.every((r) => r.closedAt > 0), limit + 10_000, 'every trickling connection closed by radiod');
      for (const x of timers) clearTimeout(x);
      const lines = kinds.map(([name], k) => {
        const ms = held[k]!.map((r) => r.closedAt - r.openedAt);
        return `${name}: held ${Math.min(...ms)}-${Math.max(...ms)} ms`;
      });
      for (const l of lines) t.diagnostic(l);
      const worst = Math.max(...all.map((r) => r.closedAt - r.openedAt));
      assert.ok(worst <= limit + 1500, `a trickling head was held ${worst} ms (deadline ${limit} ms)`);
      assert.ok(all.every((r) => !/HTTP\/1\.[01] 200/.test(r.text())), 'no trickled request was served');
      dropAll();
      return `${all.length} trickling connections (${perKind} per kind and port); the longest held ${worst} ms; ${lines.join('; ')}`;
    }, { mount: '/fuzz.ogg' });
  });

  it('answers connections past the cap with 503 at once, listeners counted, and takes connections again after', async (t) => {
    const cap = 200;
    await underAttack('connection flood past MAX_CONNECTIONS', b, async () => {
      const figures: string[] = [];
      for (const [name, port] of ports(b)) {
        // Listeners streaming count against the cap.
        const listeners = Array.from({ length: 20 }, (_, i) => {
          const r = raw(b, port, `127.0.23.${30 + (i % 5)}`, 4096);
          r.write('GET /fuzz.ogg HTTP/1.0\r\n\r\n');
          return r;
        });
        await waitFor(() => listeners.every((l) => l.text().includes('OggS')), 10_000, 'listeners streaming');
        const flood = Array.from({ length: 300 }, (_, i) => raw(b, port, `127.0.23.${40 + (i % 10)}`));
        const t0 = Date.now();
        await sleep(2000);
        const refused = flood.filter((r) => /^HTTP\/1\.0 503 /.test(r.text()));
        const silent = flood.filter((r) => r.closedAt > 0 && r.text() === '');
        const held = flood.filter((r) => r.closedAt === 0);
        const answeredIn = Math.max(0, ...refused.map((r) => r.closedAt - t0));
        // Listeners keep receiving audio while the flood is held (a few seconds: the stream comes in pages).
        const bytesBefore = listeners.map((l) => l.bytes);
        await waitFor(() => listeners.every((l, i) => l.bytes > bytesBefore[i]! + 8192 || l.closedAt > 0), 8000, 'listeners streaming').catch(() => undefined);
        const stillStreaming = listeners.filter((l, i) => l.bytes > bytesBefore[i]! + 8192).length;
        const line = `${name}: ${refused.length} of 300 refused with 503 (all within ${answeredIn} ms), ${held.length} held, ${silent.length} closed silently; ${stillStreaming}/20 listeners still streaming`;
        t.diagnostic(line);
        figures.push(line);
        assert.ok(held.length + listeners.length <= cap + 2, line);
        assert.ok(refused.length >= 300 - cap + listeners.length - 2, line);
        assert.equal(silent.length, 0, 'every refused connection got its answer');
        assert.equal(stillStreaming, 20, 'listeners keep streaming through the flood');
        dropAll();
      }
      // The count comes back down: uWS connections (short requests) and door connections, closed, no longer count.
      await sleep(500);
      for (let round = 0; round < 2; round++) {
        const batch = Array.from({ length: 150 }, (_, i) => {
          const r = raw(b, b.httpPort, `127.0.23.${50 + (i % 5)}`);
          r.write(i % 2 ? 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n' : 'GET /health HTTP/1.0\r\n\r\n');
          return r;
        });
        await Promise.all(batch.map((r) => r.until(/"worker"/, 5000)));
        assert.equal(batch.filter((r) => r.text().includes('"worker"')).length, 150, `round ${round}: 150 short requests served`);
        dropAll();
        await sleep(300);
      }
      const again = Array.from({ length: cap - 10 }, (_, i) => raw(b, b.httpPort, `127.0.23.${56 + (i % 8)}`));
      await sleep(1000);
      const refusedAfter = again.filter((r) => r.text().startsWith('HTTP/1.0 503')).length;
      assert.equal(refusedAfter, 0, `after the flood, ${cap - 10} connections are taken again (${refusedAfter} refused)`);
      dropAll();
      await sleep(300);
      return figures.join('; ');
    }, { mount: '/fuzz.ogg' });
  });

  it('limits connections not yet admitted, per address, while other addresses are served', async (t) => {
    await underAttack('idle connections from one address', b, async () => {
      const flood = Array.from({ length: 200 }, () => raw(b, b.icecastPort, '127.0.23.70'));
      await sleep(300);
      const t0 = Date.now();
      const other = raw(b, b.icecastPort, '127.0.23.71');
      other.write('GET /health HTTP/1.0\r\n\r\n');
      assert.ok(await other.until(/"worker"/, 3000), 'another address is served meanwhile');
      const otherMs = Date.now() - t0;
      await sleep(1500);
      const refused = flood.filter((r) => /^HTTP\/1\.0 503 /.test(r.text())).length;
      const held = flood.filter((r) => r.closedAt === 0).length;
      const line = `200 idle connections from one address: ${held} held, ${refused} refused with 503; another address served in ${otherMs} ms`;
      t.diagnostic(line);
      assert.equal(held, 40, line);
      assert.equal(refused, 160, line);
      dropAll();
      await sleep(300);
      return line;
    }, { mount: '/fuzz.ogg' });
  });

  it('limits new connections per second per address, while other addresses are served', async (t) => {
    await underAttack('connection rate from one address', b, async () => {
      let served = 0;
      let refused = 0;
      let otherServed = 0;
      let otherTried = 0;
      const t0 = Date.now();
      const seconds = 5;
      const one = async (from: string): Promise<boolean | null> => {
        const r = raw(b, b.httpPort, from);
        r.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        await r.until(/"worker"|503/, 3000);
        r.drop();
        open.splice(open.indexOf(r), 1);
        return r.text().includes('"worker"') ? true : /^HTTP\/1\.0 503/.test(r.text()) ? false : null;
      };
      await Promise.all([
        ...Array.from({ length: 20 }, async () => {
          while (Date.now() - t0 < seconds * 1000) {
            const ok = await one('127.0.23.80');
            if (ok) served++;
            else if (ok === false) refused++;
          }
        }),
        (async () => {
          while (Date.now() - t0 < seconds * 1000) {
            otherTried++;
            if (await one('127.0.23.81')) otherServed++;
            await sleep(100);
          }
        })(),
      ]);
      const elapsed = (Date.now() - t0) / 1000;
      const line = `one address for ${elapsed.toFixed(1)} s: ${served} served, ${refused} refused with 503 (bucket ${20 * 10} + 20/s); another address: ${otherServed}/${otherTried} served`;
      t.diagnostic(line);
      assert.ok(served <= 20 * 10 + 20 * elapsed + 5, line);
      assert.ok(served >= 20 * 10, line);
      assert.ok(refused > 0, line);
      assert.equal(otherServed, otherTried, line);
      return line;
    }, { mount: '/fuzz.ogg' });
  });

  it('lets 300 listeners behind one address connect at once, and reconnect at once, with the default limits', async (t) => {
    await underAttack('300 listeners behind one NAT address', a, async () => {
      const lines: string[] = [];
      for (const round of ['connect', 'reconnect']) {
        const listeners = Array.from({ length: 300 }, (_, i) => {
          const r = raw(a, i % 2 ? a.httpPort : a.icecastPort, '127.0.23.90', 4096);
          r.write('GET /fuzz.ogg HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n');
          return r;
        });
        await waitFor(() => listeners.every((l) => l.closedAt > 0 || l.text().includes('OggS')), 15_000, 'every listener answered').catch(() => undefined);
        const streaming = listeners.filter((l) => /^HTTP\/1\.0 200/.test(l.text()) && l.text().includes('OggS')).length;
        const line = `${round}: ${streaming}/300 streaming`;
        t.diagnostic(line);
        lines.push(line);
        assert.equal(streaming, 300, line);
        dropAll();
      }
      await sleep(300);
      return lines.join('; ');
    }, { mount: '/fuzz.ogg' });
  });

  it('survives a fuzz run of random and mutated requests split at random points on both ports', async (t) => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
    t.diagnostic(`seed ${seed} (FUZZ_SEED=${seed} replays it)`);
    const rand = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const int = (n: number): number => Math.floor(rand() * n);
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
    const real = [
      'GET /fuzz.ogg HTTP/1.1\r\nHost: stream.radio.test\r\nIcy-MetaData: 1\r\nUser-Agent: fuzz\r\n\r\n',
      'GET /fuzz.ogg HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n',
      'GET /fuzz.ogg ICE/1.0\r\n\r\n',
      'HEAD /fuzz.ogg HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /idle.ogg HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /fuzz.ogg.m3u HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /fuzz.ogg.xspf HTTP/1.0\r\n\r\n',
      'GET /status-json.xsl HTTP/1.1\r\nHost: x\r\nOrigin: http://o\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /fuzz.ogg HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /idle.ogg HTTP/1.1\r\nHost: x\r\n\r\n',
      'OPTIONS /fuzz.ogg HTTP/1.1\r\nHost: x\r\nOrigin: http://o\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: icy-metadata\r\n\r\n',
      `SOURCE /fuzz.ogg ICE/1.0\r\nAuthorization: ${WRONG}\r\nContent-Type: application/ogg\r\nIce-Name: x\r\n\r\nOggS\0\x02`,
      `SOURCE /fuzz.ogg HTTP/1.0\nAuthorization: ${WRONG}\n\n`,
      `PUT /fuzz.ogg HTTP/1.1\r\nHost: x\r\nAuthorization: ${WRONG}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\nEXTRA BODY AFTER THE END`,
      `PUT /fuzz.ogg HTTP/1.1\r\nHost: x\r\nAuthorization: ${WRONG}\r\nContent-Length: 100\r\n\r\n${'b'.repeat(150)}`,
      'PUT /fuzz.ogg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nxx',
      'GET /health HTTP/1.1\r\nHost: x\r\n\r\nPUT /fuzz.ogg HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n',
      'GET /health HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloEXTRA',
      `GET /admin/metadata?mount=/fuzz.ogg&mode=updinfo&song=Fuzz%20title HTTP/1.0\r\nAuthorization: ${WRONG}\r\n\r\n`,
      'GET /admin/stats HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /debug/latency HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
      'GET http://example.com/fuzz.ogg HTTP/1.1\r\nHost: example.com\r\n\r\n',
      `GET / HTTP/1.1\r\nHost: x\r\nX-Huge: ${'h'.repeat(20_000)}\r\n\r\n`,
      `GET /fuzz.ogg HTTP/1.0\r\n${'X-Many: v\r\n'.repeat(300)}\r\n`,
      `GET /${'p'.repeat(5000)} HTTP/1.1\r\n\r\n`,
      '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
      '\r\n\r\n\r\n',
      '',
    ];
    const mutate = (b: Buffer): Buffer => {
      let out = b;
      for (let k = int(4); k > 0; k--) {
        const at = int(out.length + 1);
        switch (int(9)) {
          case 0: if (out.length) out = Buffer.concat([out.subarray(0, at), Buffer.from([int(256)]), out.subarray(at + 1)]); break;
          case 1: out = Buffer.concat([out.subarray(0, at), bytes(1 + int(40)), out.subarray(at)]); break;
          case 2: out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + int(30))]); break;
          case 3: out = out.subarray(0, at); break;
          case 4: out = Buffer.concat([out.subarray(0, at), out.subarray(Math.max(0, at - 50), at), out.subarray(at)]); break;
          case 5: out = Buffer.from(out.toString('latin1').replaceAll('\r\n', '\n'), 'latin1'); break;
          case 6: out = Buffer.from(out.toString('latin1').replace(/HTTP\/1\.[01]|ICE\/1\.0/, pick(['HTTP/1.0', 'HTTP/1.1', 'ICE/1.0', 'HTTP/2.0', 'HTTP/9', 'http/1.1', ''])), 'latin1'); break;
          case 7: out = Buffer.from(out.toString('latin1').replace(/^[A-Z]+/, pick(['GET', 'HEAD', 'PUT', 'SOURCE', 'POST', 'OPTIONS', 'DELETE', 'get', 'G E T', 'XXXXXXXXXXXXXXXXXXXXXX'])), 'latin1'); break;
          default: out = Buffer.concat([out, Buffer.from(pick(['\r\n', '\r\n\r\n', 'Content-Length: 99999999\r\n', 'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'Expect: 100-continue\r\n', 'Connection: keep-alive\r\n']))]);
        }
      }
      return out;
    };
    const budgetMs = 25_000;
    const target = 40_000;
    const parallel = 64;
    let sent = 0;
    const outcomes = new Map<string, number>();
    /** Runs `parallel` clients for `ms`; `fuzzed`: whether requests are random and mutated, or the real ones as they are. */
    const traffic = async (ms: number, fuzzed: boolean): Promise<number> => {
      const t0 = Date.now();
      const one = async (): Promise<void> => {
        const kind = fuzzed ? int(10) : 1;
        const req = kind === 0 ? bytes(int(600)) : kind < 4 ? Buffer.from(pick(real), 'latin1') : mutate(Buffer.from(pick(real), 'latin1'));
        const port = rand() < 0.5 ? a.httpPort : a.icecastPort;
        const r = new Raw(a.host, port, `127.0.23.${100 + int(100)}`, 512);
        if (!(await r.connected)) {
          outcomes.set('connect failed', (outcomes.get('connect failed') ?? 0) + 1);
          return;
        }
        // Split at random points, with small pauses between pieces.
        const cuts = Array.from({ length: int(5) }, () => int(req.length + 1)).sort((x, y) => x - y);
        let from = 0;
        for (const cut of [...cuts, req.length]) {
          r.write(req.subarray(from, cut));
          from = cut;
          if (rand() < 0.3) await sleep(int(15));
        }
        const end = rand();
        if (end < 0.1) r.drop();
        else {
          if (end < 0.2) r.sock.end();
          await Promise.race([r.closed, sleep(20 + int(150))]);
          r.drop();
        }
        if (!fuzzed) return;
        sent++;
        const status = /^(?:HTTP\/1\.[01]|ICY) (\d)\d\d/.exec(r.text())?.[1];
        const key = status ? `${status}xx` : r.serverClosed ? 'closed without answer' : 'no answer yet';
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      };
      await Promise.all(Array.from({ length: parallel }, async () => {
        while (Date.now() - t0 < ms && sent < target) await one();
      }));
      return (Date.now() - t0) / 1000;
    };
    // First the same clients with the real requests as they are: a node busy with ordinary traffic sizes its
    // heaps (V8's young generation grows to tens of MiB per thread under any load), which is not the attack's doing.
    const r0 = rssBytes(a.proc.pid);
    await traffic(4000, false);
    t.diagnostic(`ordinary traffic first: radiod RSS grew ${((rssBytes(a.proc.pid) - r0) / 1048576).toFixed(1)} MiB`);
    await underAttack('HTTP fuzz run', a, async () => {
      const secs = await traffic(budgetMs, true);
      const summary = [...outcomes].sort().map(([k, v]) => `${k} ${v}`).join(', ');
      t.diagnostic(`${sent} requests in ${secs.toFixed(1)} s: ${summary}`);
      return `${sent} random and mutated requests in ${secs.toFixed(1)} s, ${parallel} at a time (${summary})`;
    }, { mount: '/fuzz.ogg' });
    assert.ok(sent >= 10_000, `tens of thousands of requests (${sent})`);
  });
});
