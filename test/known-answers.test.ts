/**
 * Redirects answered by native code on kept-alive connections
 * (native/known-answers), on a redirect-mode node without a listener log
 * (127.0.0.36, listener log on) beside a master with a live MP3 mount (127.0.0.35): every
 * request on a connection gets its own answer, in order, whether it comes
 * alone, pipelined, split over two writes or with a query; HEAD gets a head
 * only; a request native code does not answer (the status page, an unknown
 * mount, a malformed header) is answered on the same connection by
 * JavaScript; a deleted mount stops being redirected at once; a client that
 * pipelines thousands of requests without reading gets every answer once
 * it reads; each answer is a line of the listener log; native answers
 * count in radioai_redirects_total; an idle
 * connection, or one whose head trickles in, is let go, and so is every
 * connection when the watchdog ends a wedged worker.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, waitFor } from '../harness/net.ts';
import { createMount, httpGet, radioctl, startEtcd, startRadiod, tempDir, type Etcd, type Radiod } from '../harness/components.ts';
import { KeepSource, ffmpegMp3Source, icecastUrl } from '../harness/stream.ts';

const MOUNT = '/known.mp3';

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** A client connection that reads HTTP/1.1 answers one after another (Content-Length framed; HEAD answers have none). */
class KeptAlive {
  readonly sock: Socket;
  #buf = Buffer.alloc(0);
  closed = false;
  readonly #ready: Promise<void>;

  constructor(host: string, port: number, localAddress?: string) {
    this.sock = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
    this.sock.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
    });
    this.sock.on('close', () => {
      this.closed = true;
    });
    this.sock.on('error', () => undefined);
    this.#ready = new Promise((res) => this.sock.once('connect', () => res()));
  }

  async send(text: string): Promise<void> {
    await this.#ready;
    this.sock.write(text);
  }

  /** The next `n` answers; `heads` lists the indexes answered to HEAD (no body). */
  async answers(n: number, heads: number[] = [], timeoutMs = 10_000): Promise<Answer[]> {
    const out: Answer[] = [];
    await waitFor(() => {
      while (out.length < n) {
        const end = this.#buf.indexOf('\r\n\r\n');
        if (end < 0) return false;
        const lines = this.#buf.subarray(0, end).toString('latin1').split('\r\n');
        const headers = new Map<string, string>();
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          headers.set(l.slice(0, c).toLowerCase(), l.slice(c + 1).trim());
        }
        const len = heads.includes(out.length) ? 0 : Number(headers.get('content-length') ?? 0);
        if (this.#buf.length < end + 4 + len) return false;
        out.push({ status: Number(lines[0]!.split(' ')[1]), headers, body: this.#buf.subarray(end + 4, end + 4 + len).toString() });
        this.#buf = this.#buf.subarray(end + 4 + len);
      }
      return true;
    }, timeoutMs, `${n} answers`, 10);
    return out;
  }

  /** Bytes read and not taken as answers. */
  get pending(): number {
    return this.#buf.length;
  }

  close(): void {
    this.sock.destroy();
  }
}

const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: radio.test\r\nUser-Agent: test\r\n${extra}\r\n`;

describe('redirects answered natively', () => {
  let etcd: Etcd;
  let m: Radiod;
  let r: Radiod;
  let source: KeepSource;
  let metricsPort: number;
  let location = '';
  const logFile = join(tempDir('known-log'), 'access.log');
  const logLines = (): string[] => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '') : []);
  const clients: KeptAlive[] = [];
  const open = (): KeptAlive => {
    const c = new KeptAlive(r.host, r.httpPort);
    clients.push(c);
    return c;
  };

  before(async () => {
    etcd = await startEtcd('127.0.0.35');
    m = await startRadiod({ name: 'm', host: '127.0.0.35', etcd: etcd.url, leaseTtl: 3, workers: 1 });
    await waitFor(async () => (await m.health()).body.icecast === 'ready', 15_000, 'm ready');
    metricsPort = await freePort('127.0.0.36');
    r = await startRadiod({
      name: 'r', host: '127.0.0.36', etcd: etcd.url, leaseTtl: 3, workers: 1, metricsAddr: `127.0.0.36:${metricsPort}`,
      extraArgs: ['--enable-icecast-proxy', 'false'], env: { RADIOAI_FAULTS: '1', ACCESS_LOG: logFile, TRUSTED_PROXIES: '127.0.0.37' },
    });
    const creds = await createMount(etcd.url, ['create-mount', MOUNT]);
    source = new KeepSource(() => ffmpegMp3Source(icecastUrl(creds.username, creds.password, m.host, m.icecastPort, MOUNT)));
    await waitFor(async () => (await httpGet(`http://${r.host}:${r.httpPort}${MOUNT}`)).status === 302, 30_000, 'a redirect from r');
    location = String((await httpGet(`http://${r.host}:${r.httpPort}${MOUNT}`)).headers.location);
  });
  after(async () => {
    for (const c of clients) c.close();
    await source?.stop();
    await r?.stop();
    await m?.stop();
    await etcd?.stop();
  });

  it('says at start that it answers redirects natively', () => {
    assert.match(r.proc.output(), /redirects: answered natively once decided/);
  });

  it('answers each request on a kept-alive connection, alone, pipelined, split, with a query and to HEAD', async () => {
    assert.match(location, new RegExp(`^http://127\\.0\\.0\\.3[56]:\\d+${MOUNT.replace('.', '\\.')}$`));
    const c = open();
    for (let i = 0; i < 3; i++) {
      await c.send(get(MOUNT));
      const [a] = await c.answers(1);
      assert.equal(a!.status, 302);
      assert.equal(a!.headers.get('location'), location);
      assert.equal(a!.body, `${location}\n`);
      assert.ok(a!.headers.get('date'), 'a Date header');
    }
    // Pipelined: three requests in one write, three answers in order (a HEAD in the middle, without body).
    await c.send(get(MOUNT) + `HEAD ${MOUNT} HTTP/1.1\r\nHost: radio.test\r\n\r\n` + get(`${MOUNT}?token=abc`));
    const [one, head, query] = await c.answers(3, [1]);
    assert.equal(one!.headers.get('location'), location);
    assert.equal(head!.status, 302);
    assert.equal(head!.headers.get('content-length'), String(`${location}\n`.length), 'HEAD says how long the body would be');
    assert.equal(query!.headers.get('location'), `${location}?token=abc`, 'the query goes along');
    // A head split over two writes.
    const whole = get(MOUNT);
    await c.send(whole.slice(0, 20));
    await new Promise((res) => setTimeout(res, 100));
    await c.send(whole.slice(20));
    const [split] = await c.answers(1);
    assert.equal(split!.status, 302);
    assert.equal(c.pending, 0, 'nothing more than the answers');
    assert.equal(c.closed, false, 'the connection stays open');
  });

  it('gives a request it does not answer to JavaScript on the same connection', async () => {
    const c = open();
    await c.send(get(MOUNT) + get('/status-json.xsl'));
    const [redirect, status] = await c.answers(2);
    assert.equal(redirect!.status, 302);
    assert.equal(status!.status, 200);
    assert.ok((JSON.parse(status!.body) as { icestats?: unknown }).icestats, 'the status JSON');

    const bad = open();
    await bad.send(get(MOUNT));
    assert.equal((await bad.answers(1))[0]!.status, 302);
    await bad.send(get(MOUNT, 'X-Bad\x01: yes\r\n'));
    assert.equal((await bad.answers(1))[0]!.status, 400, 'a malformed header gets 400 from JavaScript');

    const unknown = open();
    await unknown.send(get(MOUNT) + get('/no-such.mp3'));
    const [, missing] = await unknown.answers(2);
    assert.equal(missing!.status, 404);
  });

  it('answers a head that comes in many small pieces, and one whose lines end in a bare LF', async () => {
    const c = open();
    await c.send(get(MOUNT));
    assert.equal((await c.answers(1))[0]!.status, 302);
    // Forty pieces 10 ms apart: past the pieces native code reads itself, JavaScript finishes the head.
    const whole = get(`${MOUNT}?pieces=40`);
    const step = Math.ceil(whole.length / 40);
    for (let i = 0; i < whole.length; i += step) {
      await c.send(whole.slice(i, i + step));
      await new Promise((res) => setTimeout(res, 10));
    }
    const [pieces] = await c.answers(1);
    assert.equal(pieces!.status, 302);
    assert.equal(pieces!.headers.get('location'), `${location}?pieces=40`);

    const lf = open();
    await lf.send(get(MOUNT));
    assert.equal((await lf.answers(1))[0]!.status, 302);
    await lf.send(`GET ${MOUNT} HTTP/1.1\nHost: radio.test\n\n`);
    const [bare] = await lf.answers(1, [], 5000);
    assert.ok(bare!.status === 302 || bare!.status === 400, `a bare-LF head is answered (${bare!.status}), not left waiting`);
  });

  it('keeps a connection whose reads keep ending in the middle of a request', async () => {
    const c = open();
    const whole = get(MOUNT);
    const [first, rest] = [whole.slice(0, 25), whole.slice(25)];
    // The first request whole (the front door gives native code only a connection whose first head is whole).
    await c.send(whole + first);
    assert.equal((await c.answers(1))[0]!.status, 302);
    // 12 s of requests that each arrive split, the next one's start with the last one's end.
    for (let i = 0; i < 24; i++) {
      await new Promise((res) => setTimeout(res, 500));
      await c.send(rest + first);
      assert.equal((await c.answers(1))[0]!.status, 302, `request ${i + 1}`);
    }
    await c.send(rest);
    assert.equal((await c.answers(1))[0]!.status, 302);
    assert.equal(c.closed, false, 'still open after 12 s of split requests');
  });

  it('answers every one of thousands of pipelined requests, in order, once the client reads', async () => {
    const c = open();
    c.sock.pause();
    const n = 3000;
    await c.send(get(MOUNT).repeat(n));
    await new Promise((res) => setTimeout(res, 500));
    c.sock.resume();
    const all = await c.answers(n, [], 30_000);
    assert.equal(all.filter((a) => a.status === 302 && a.headers.get('location') === location).length, n);
    assert.equal(c.closed, false);
  });

  it('writes a line per answer to the listener log, X-Forwarded-For believed only from a trusted proxy', async () => {
    const proxy = new KeptAlive(r.host, r.httpPort, '127.0.0.37');
    const other = new KeptAlive(r.host, r.httpPort, '127.0.0.38');
    clients.push(proxy, other);
    await proxy.send(get(`${MOUNT}?via=proxy`, 'X-Forwarded-For: 203.0.113.9\r\nReferer: http://example.test/player\r\n') + `HEAD ${MOUNT} HTTP/1.1\r\nHost: x\r\nUser-Agent: headcheck\r\n\r\n`);
    await proxy.answers(2, [1]);
    await other.send(get(`${MOUNT}?via=other`, 'X-Forwarded-For: 198.51.100.7\r\n'));
    await other.answers(1);
    const viaProxy = await waitFor(() => logLines().find((l) => l.includes('?via=proxy')), 10_000, 'the proxied request in the log');
    assert.match(viaProxy, new RegExp(`^203\\.0\\.113\\.9 r - \\[[^\\]]+\\] "GET ${MOUNT.replace('.', '\\.')}\\?via=proxy HTTP/1\\.1" 302 0 "http://example\\.test/player" "test" 0$`));
    const head = await waitFor(() => logLines().find((l) => l.includes('"headcheck"')), 10_000, 'the HEAD in the log');
    assert.match(head, /^203\.0\.113\.9 |^127\.0\.0\.37 /);
    assert.match(head, /"HEAD \/known\.mp3 HTTP\/1\.1" 302 0 "-" "headcheck" 0$/);
    const viaOther = await waitFor(() => logLines().find((l) => l.includes('?via=other')), 10_000, 'the untrusted request in the log');
    assert.match(viaOther, /^127\.0\.0\.38 /, 'X-Forwarded-For from an untrusted peer is not believed');
  });

  it('counts its answers in radioai_redirects_total', async () => {
    const count = async (): Promise<number> => {
      const body = (await httpGet(`http://127.0.0.36:${metricsPort}/metrics`)).body;
      return Number(/^radioai_redirects_total(?:\{[^}]*\})? (\d+)/m.exec(body)?.[1] ?? NaN);
    };
    const before = await count();
    const c = open();
    await c.send(get(MOUNT).repeat(50));
    await c.answers(50);
    await waitFor(async () => (await count()) >= before + 50, 10_000, 'the counter to move by 50');
  });

  it('lets an idle connection go, as uWS and the door do after 10 s', async () => {
    const idle = open();
    await idle.send(get(MOUNT));
    assert.equal((await idle.answers(1))[0]!.status, 302);
    const t0 = Date.now();
    await waitFor(() => idle.closed, 20_000, 'the idle connection to be closed');
    assert.ok(Date.now() - t0 >= 8000, `closed after ${Date.now() - t0} ms, not before it was idle`);
  });

  it('lets go a head that trickles in, however steadily its bytes come', async () => {
    const c = open();
    await c.send(get(MOUNT));
    assert.equal((await c.answers(1))[0]!.status, 302);
    const t0 = Date.now();
    // One byte every second of a head that never ends: the 10 s run from its first byte.
    let i = 0;
    const drip = setInterval(() => void c.send('GET /known.mp3 HTTP/1.1\r\nX-Slow: '.charAt(i++) || 'a'), 1000);
    try {
      await waitFor(() => c.closed, 20_000, 'the trickling connection to be closed');
    } finally {
      clearInterval(drip);
    }
    const ms = Date.now() - t0;
    assert.ok(ms >= 8000 && ms < 15_000, `closed ${ms} ms after the head began`);
  });

  it('lets its connections go when the watchdog ends a wedged worker, and the process lives on', async () => {
    const held = [open(), open(), open()];
    for (const c of held) {
      await c.send(get(MOUNT));
      assert.equal((await c.answers(1))[0]!.status, 302);
    }
    const pid = r.proc.pid;
    // The only worker spins inside a request until the watchdog terminates it (4 s without a heartbeat).
    void httpGet(`http://${r.host}:${r.httpPort}/debug/fault/wedge`, 2000).catch(() => undefined);
    // Well before they would be idle for 10 s: it is the worker's end that closes them.
    await waitFor(() => held.every((c) => c.closed), 9000, 'the held connections to be closed with their worker');
    await waitFor(async () => (await httpGet(`http://${r.host}:${r.httpPort}${MOUNT}`).catch(() => ({ status: 0 }))).status === 302, 20_000, 'a new worker to redirect');
    assert.equal(r.proc.pid, pid);
    assert.ok(process.kill(pid, 0), 'radiod lives on');
    const fresh = open();
    await fresh.send(get(MOUNT) + get(MOUNT));
    assert.deepEqual((await fresh.answers(2)).map((a) => a.status), [302, 302]);
  });

  it('stops redirecting a deleted mount at once, on a connection it answered before', async () => {
    const c = open();
    await c.send(get(MOUNT));
    assert.equal((await c.answers(1))[0]!.status, 302);
    await radioctl(etcd.url, ['delete-mount', MOUNT]);
    await waitFor(async () => (await httpGet(`http://${r.host}:${r.httpPort}${MOUNT}`)).status === 404, 15_000, 'r to know the mount is gone');
    await c.send(get(MOUNT));
    assert.equal((await c.answers(1))[0]!.status, 404);
  });
});
