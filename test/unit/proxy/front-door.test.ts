/**
 * The front door's decisions, without sockets: connection limits per
 * worker and per client address, which heads uWS may have, and the cost of
 * reading a head that arrives a byte at a time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BUSY_ANSWER, BURST_SECONDS, ClientTable, admittedAtHead, clientKey, workerShare } from '../../../src/proxy/conn-limits.ts';
import { headState } from '../../../src/proxy/classify.ts';
import { HeadParser, LIMITS } from '../../../src/proxy/http-head.ts';

describe('connection limits', () => {
  it('gives each worker an even share and a quarter more, all of it to a single worker', () => {
    assert.equal(workerShare(40_000, 1), 40_000);
    assert.equal(workerShare(40_000, 2), 25_000);
    assert.equal(workerShare(50, 4), 16);
    assert.equal(workerShare(1, 8), 1);
    assert.equal(workerShare(0, 2), 0, 'no limit stays no limit');
  });

  it('counts IPv4 by address (mapped or not) and IPv6 by /64', () => {
    assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:0db8:0001:0002');
    assert.equal(clientKey('2001:DB8:1:2::ffff'), clientKey('2001:db8:1:2:1:2:3:4'));
    assert.notEqual(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'));
    assert.equal(clientKey('::1'), '0000:0000:0000:0000');
    assert.equal(clientKey('fe80::'), 'fe80:0000:0000:0000');
  });

  it('lets a burst of ten seconds of the rate through, then the rate, per address', () => {
    const t = new ClientTable({ rate: 10, pending: 0 });
    let now = 1_000_000;
    let passed = 0;
    for (let i = 0; i < 1000; i++) {
      const e = t.open('192.0.2.1', now);
      if (typeof e !== 'string') {
        passed++;
        t.settle(e);
      } else assert.equal(e, 'rate');
    }
    assert.equal(passed, 10 * BURST_SECONDS, 'the burst');
    assert.notEqual(typeof t.open('192.0.2.2', now), 'string', 'another address is not limited');
    now += 1000;
    passed = 0;
    for (let i = 0; i < 100; i++) if (typeof t.open('192.0.2.1', now) !== 'string') passed++;
    assert.equal(passed, 10, 'one second later: one second of the rate');
  });

  it('lets hundreds of listeners behind one address reconnect at once with the default settings', () => {
    // CLIENT_CONN_RATE 100 and CLIENT_PENDING 1024, two workers: each worker's share.
    const t = new ClientTable({ rate: workerShare(100, 2), pending: workerShare(1024, 2) });
    const held = [];
    for (let i = 0; i < 600; i++) {
      const e = t.open('198.51.100.9', 5000 + i);
      if (typeof e !== 'string') held.push(e);
    }
    assert.equal(held.length, 600, '600 connections in 0.6 s through one worker, none of them admitted yet');
    for (const e of held) t.settle(e);
  });

  it('refuses a connection beyond the pending count until one is admitted or closes', () => {
    const t = new ClientTable({ rate: 0, pending: 3 });
    const held = [0, 1, 2].map(() => t.open('192.0.2.1', 0));
    assert.ok(held.every((e) => typeof e !== 'string'));
    assert.equal(t.open('192.0.2.1', 0), 'pending');
    assert.notEqual(typeof t.open('192.0.2.99', 0), 'string', 'other addresses are not held up');
    t.settle(held[0] as Exclude<(typeof held)[0], string>);
    assert.notEqual(typeof t.open('192.0.2.1', 0), 'string');
  });

  it('keeps its table bounded, forgetting the address seen least recently', () => {
    const t = new ClientTable({ rate: 1, pending: 1, maxEntries: 100 });
    const first = t.open('10.0.0.0', 0);
    for (let i = 1; i < 1000; i++) t.open(`10.0.${i >> 8}.${i & 255}`, 0);
    assert.ok(t.size <= 100 && t.size >= 80, `${t.size} entries`);
    // 10.0.0.0 was forgotten: it starts afresh (its pending connection no longer counted).
    assert.notEqual(typeof first, 'string');
    assert.notEqual(typeof t.open('10.0.0.0', 0), 'string');
    // A recent one is still remembered: it has used its one token and has one pending.
    assert.equal(typeof t.open('10.0.3.231', 0), 'string');
  });

  it('costs the same per connection whatever the table holds', () => {
    const t = new ClientTable({ rate: 1000, pending: 1000, maxEntries: 16_384 });
    const time = (n: number): number => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) t.open(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, i);
      return (performance.now() - t0) / n;
    };
    time(20_000);
    const small = time(20_000);
    const large = time(200_000);
    assert.ok(large < small * 4, `per connection: ${small.toFixed(4)} ms with 20k, ${large.toFixed(4)} ms with 200k addresses`);
  });

  it('admits sources and title updates at their head; listeners when their stream starts', () => {
    assert.equal(admittedAtHead('SOURCE', '/live.ogg'), true);
    assert.equal(admittedAtHead('PUT', '/live.ogg'), true);
    assert.equal(admittedAtHead('GET', '/admin/metadata'), true);
    assert.equal(admittedAtHead('GET', '/live.ogg'), false);
    assert.equal(admittedAtHead('GET', '/status-json.xsl'), false);
  });

  it('answers a refused connection with a well-formed 503', () => {
    const text = BUSY_ANSWER.toString('latin1');
    const [head = '', body = ''] = text.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.0 503 /);
    assert.equal(Number(/Content-Length: (\d+)/.exec(head)?.[1]), Buffer.byteLength(body));
  });
});

describe('heads for uWS', () => {
  it('hands uWS only whole heads ended by CRLF', () => {
    assert.equal(headState(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), 'whole');
    assert.equal(headState(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 'whole');
    assert.equal(headState(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r')), 'partial');
    assert.equal(headState(Buffer.from('GET / HTTP/1.1\r\nHost: x')), 'partial');
    assert.equal(headState(Buffer.from('GET / HTTP/1.1\r')), 'partial');
    assert.equal(headState(Buffer.from('GET / HTTP/1.1\nHost: x\n\n')), 'door', 'uWS answers bare LF with 505');
    assert.equal(headState(Buffer.from('GET / HTTP/1.1\r\nHost: x\n')), 'door');
  });
});

describe('reading a head a byte at a time', () => {
  /** A head of about `bytes` bytes, well under LIMITS. */
  const headOf = (bytes: number): Buffer => {
    const line = `X-Pad: ${'p'.repeat(240)}\r\n`;
    return Buffer.from(`GET /x HTTP/1.1\r\n${line.repeat(Math.floor(bytes / line.length))}\r\n`);
  };
  const cost = (head: Buffer): number => {
    const runs: number[] = [];
    for (let k = 0; k < 5; k++) {
      const t0 = performance.now();
      const p = new HeadParser();
      let r: ReturnType<HeadParser['feed']> = { kind: 'more' };
      for (let i = 0; i < head.length; i++) r = p.feed(head.subarray(i, i + 1));
      runs.push(performance.now() - t0);
      assert.equal(r.kind, 'head');
    }
    return runs.sort((a, b) => a - b)[2]!;
  };

  it('costs time in proportion to the head (not its square)', (t) => {
    const small = headOf(1000);
    const large = headOf(LIMITS.headBytes - 500);
    cost(large);
    const a = cost(small);
    const b = cost(large);
    const ratio = b / a;
    t.diagnostic(`${small.length} bytes: ${a.toFixed(2)} ms; ${large.length} bytes: ${b.toFixed(2)} ms; ratio ${ratio.toFixed(1)} for ${(large.length / small.length).toFixed(1)} times the bytes`);
    // Linear: about 16; copying everything so far on each byte: 16 squared (85 measured for the old parser).
    assert.ok(ratio < 40, `ratio ${ratio.toFixed(1)}`);
  });

  it('refuses a head past the size bound however it is sent', () => {
    const p = new HeadParser();
    const big = Buffer.from(`GET /x HTTP/1.1\r\n${'A: b\r\n'.repeat(4000)}`);
    let r: ReturnType<HeadParser['feed']> = { kind: 'more' };
    let fed = 0;
    for (; fed < big.length && r.kind === 'more'; fed += 7) r = p.feed(big.subarray(fed, fed + 7));
    assert.deepEqual(r, { kind: 'bad', status: 431, reason: 'request head too large' });
    assert.ok(fed <= LIMITS.headBytes + 7, `refused after ${fed} bytes`);
  });

  it('keeps what follows the head for the body, split anywhere', () => {
    const text = Buffer.from('PUT /a.ogg HTTP/1.1\r\nHost: h\r\n\r\nBODY-BYTES');
    const headBytes = text.indexOf('BODY');
    for (let cut = 1; cut < text.length; cut++) {
      const p = new HeadParser();
      let r = p.feed(text.subarray(0, cut));
      if (r.kind === 'more') r = p.feed(text.subarray(cut));
      assert.equal(r.kind, 'head', `cut at ${cut}`);
      if (r.kind === 'head') {
        // What came with the head's last piece; the rest of the body is read from the socket later.
        assert.equal(r.rest.toString(), text.subarray(headBytes, cut < headBytes ? text.length : cut).toString(), `cut at ${cut}`);
        assert.equal(r.head.headers.get('host'), 'h');
      }
    }
  });
});
