/**
 * The front-end's pure parts, table-driven and fed split input: the Ogg
 * page splitter, ICY metadata stripping and insertion, the request-head
 * parser, the load-balancing policy and the listener routing decision.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { waitFor } from '../../../harness/net.ts';
import { Hub } from '../../../src/proxy/hub.ts';
import type { Client } from '../../../src/proxy/hub-client.ts';
import { retryDelay } from '../../../src/proxy/upstream-link.ts';
import { chooseNode, headroom } from '../../../src/proxy/balance.ts';
import { HeadParser, LIMITS } from '../../../src/proxy/http-head.ts';
import { ICY_METAINT, IcyInserter, IcyStripper, icyBlock } from '../../../src/proxy/icy.ts';
import { ListenRouter, routeListener } from '../../../src/proxy/listen-route.ts';
import { OggHeaderTracker, OggSplitter } from '../../../src/proxy/ogg.ts';
import { m3u, playlistOf, pls, streamUrl } from '../../../src/proxy/playlist.ts';
import { NO_STREAM_INFO, type Snapshot, type SnapshotNode } from '../../../src/ipc/snapshot.ts';
import { ChunkedDecoder } from '../../../src/proxy/chunked.ts';
import { MAX_REQUEST_LINE, classify } from '../../../src/proxy/classify.ts';
import { upstreamHead } from '../../../src/proxy/icecast-door.ts';
import { oggPage } from '../../../harness/ogg-pages.ts';

/** A deterministic PRNG so that a failing split is reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function splitRandomly(buf: Buffer, random: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length;) {
    const n = 1 + Math.floor(random() * 700);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}


describe('hub retries', () => {
  it('asks every upstream of a round one after the other, then waits 100 ms, then 250 ms per round', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((a) => retryDelay(a, 3)), [0, 0, 0, 100, 0, 0, 250, 0, 0, 250]);
    assert.deepEqual([0, 1, 2, 3].map((a) => retryDelay(a, 1)), [0, 100, 250, 250]);
    assert.deepEqual([0, 1, 2].map((a) => retryDelay(a, 0)), [0, 100, 250]);
  });
});

describe('Ogg pages', () => {
  const pages = [
    oggPage({ bos: true, granule: 0n, body: 30 }),
    oggPage({ granule: 0n, body: 300 }),
    oggPage({ granule: -1n, body: 4000 }),
    oggPage({ granule: 0n, body: 510 }),
    ...Array.from({ length: 20 }, (_, i) => oggPage({ granule: BigInt(1000 * (i + 1)), body: 200 + i * 37 })),
    oggPage({ bos: true, granule: 0n, serial: 9, body: 30 }),
    oggPage({ granule: 0n, serial: 9, body: 90 }),
    oggPage({ granule: 500n, serial: 9, body: 90 }),
  ];
  const stream = Buffer.concat([Buffer.from('garbage before the first page'), ...pages]);

  for (const seed of [1, 2, 3, 42, 1234]) {
    it(`splits a stream cut at random points into whole pages (seed ${seed})`, () => {
      const s = new OggSplitter();
      const got = splitRandomly(stream, rng(seed)).flatMap((c) => s.push(c));
      assert.equal(got.length, pages.length);
      got.forEach((p, i) => assert.ok(p.data.equals(pages[i]!), `page ${i}`));
      assert.equal(s.skipped, 'garbage before the first page'.length);
    });
  }

  it('classifies header pages and notices a new chain', () => {
    const s = new OggSplitter();
    const t = new OggHeaderTracker();
    const kinds = s.push(stream).map((p) => t.classify(p));
    assert.deepEqual(kinds.slice(0, 5), [true, true, true, true, false]);
    assert.deepEqual(kinds.slice(-3), [true, true, false]);
    assert.equal(t.chain, 2);
    assert.equal(t.headers.length, 2, 'the second chain has its own two header pages');
  });
});

describe('ICY metadata', () => {
  it('passes a title\'s bytes through unchanged, UTF-8 or Latin-1', () => {
    for (const raw of [Buffer.from("StreamTitle='Ünïcode – ok';", 'utf8'), Buffer.from("StreamTitle='Caf\u00e9';", 'latin1')]) {
      const st = new IcyStripper(10);
      const block = Buffer.alloc(1 + Math.ceil(raw.length / 16) * 16);
      block[0] = Math.ceil(raw.length / 16);
      raw.copy(block, 1);
      st.push(Buffer.concat([Buffer.alloc(10), block, Buffer.alloc(5)]));
      const out = new IcyInserter().transform(Buffer.alloc(ICY_METAINT), st.metadata);
      assert.ok(out.subarray(ICY_METAINT).equals(block), 'the same block, byte for byte');
    }
  });

  it('strips blocks from a stream split anywhere and keeps the latest title', () => {
    const metaint = 1000;
    const audio = Buffer.alloc(5500, 0x55);
    const blocks = [icyBlock("StreamTitle='one';"), Buffer.from([0]), icyBlock("StreamTitle='two';"), Buffer.from([0]), Buffer.from([0])];
    const parts: Buffer[] = [];
    for (let i = 0; i * metaint < audio.length; i++) {
      parts.push(audio.subarray(i * metaint, (i + 1) * metaint));
      if ((i + 1) * metaint <= audio.length) parts.push(blocks[i]!);
    }
    for (const seed of [5, 6, 7]) {
      const st = new IcyStripper(metaint);
      const out = Buffer.concat(splitRandomly(Buffer.concat(parts), rng(seed)).map((c) => st.push(c)));
      assert.ok(out.equals(audio));
      assert.equal(st.metadata, "StreamTitle='two';");
    }
  });

  it('inserts a block every ICY_METAINT bytes, the title only when it changes', () => {
    const ins = new IcyInserter();
    const chunks = [Buffer.alloc(7000, 1), Buffer.alloc(20_000, 2), Buffer.alloc(30_000, 3)];
    const out = Buffer.concat([ins.transform(chunks[0]!, "StreamTitle='a';"), ins.transform(chunks[1]!, "StreamTitle='a';"), ins.transform(chunks[2]!, "StreamTitle='b';")]);
    const st = new IcyStripper(ICY_METAINT);
    const titles: string[] = [];
    let audio = 0;
    for (const c of splitRandomly(out, rng(9))) {
      audio += st.push(c).length;
      if (titles.at(-1) !== st.metadata) titles.push(st.metadata);
    }
    assert.equal(audio, 57_000);
    assert.deepEqual(titles.filter(Boolean), ["StreamTitle='a';", "StreamTitle='b';"]);
    assert.equal(out.length, 57_000 + icyBlock("StreamTitle='a';").length + 1 + icyBlock("StreamTitle='b';").length);
  });
});

describe('request heads', () => {
  const ok = [
    'GET /live.ogg HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n',
    'SOURCE /live.ogg ICE/1.0\r\nAuthorization: Basic eDp5\r\nContent-Type: audio/mpeg\r\n\r\n',
    'SOURCE /live.ogg HTTP/1.0\nAuthorization: Basic eDp5\n\n',
    'PUT /a/b.mp3?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nBODY',
  ];
  for (const text of ok) {
    it(`parses ${JSON.stringify(text.slice(0, 30))} however it is split`, () => {
      for (const seed of [1, 2, 3]) {
        const p = new HeadParser();
        let r: ReturnType<HeadParser['feed']> = { kind: 'more' };
        const buf = Buffer.from(text);
        for (let i = 0; i < buf.length && r.kind === 'more';) {
          const n = 1 + Math.floor(rng(seed + i)() * 5);
          r = p.feed(buf.subarray(i, i + n));
          i += n;
        }
        assert.equal(r.kind, 'head');
        if (r.kind !== 'head') return;
        assert.match(r.head.method, /^(GET|SOURCE|PUT)$/);
        assert.ok(r.head.path.startsWith('/'));
        assert.ok(!r.head.path.includes('?'));
      }
    });
  }
  const bad: [string, number][] = [
    ['GARBAGE\r\n\r\n', 400],
    ['GET /x HTTP/2.0\r\n\r\n', 400],
    ['GET /x HTTP/1.1\r\nno colon here\r\n\r\n', 400],
    ['GET /x HTTP/1.1\r\nbad name: x\r\n\r\n', 400],
    [`GET /${'x'.repeat(LIMITS.requestLine)} HTTP/1.1\r\n\r\n`, 414],
    [`GET /x HTTP/1.1\r\n${'A: b\r\n'.repeat(LIMITS.headers + 1)}\r\n`, 431],
    [`GET /x HTTP/1.1\r\nA: ${'b'.repeat(LIMITS.headBytes)}`, 431],
  ];
  for (const [text, status] of bad) {
    it(`refuses ${JSON.stringify(text.slice(0, 30))} with ${status}`, () => {
      const r = new HeadParser().feed(Buffer.from(text));
      assert.equal(r.kind, 'bad');
      if (r.kind === 'bad') assert.equal(r.status, status);
    });
  }
});

function node(name: string, over: Partial<SnapshotNode> = {}): SnapshotNode {
  return {
    slot: 0, name, addresses: [`10.0.0.${name.length}`], httpPort: 80, dnsPort: 53, icecastPort: 8000, icecastInternalPort: 8001, httpsPort: 0,
    alive: true, master: false, icecastReady: true, etcdHealthy: true, proxy: true, listeners: 0, bandwidthKbps: 0, maxListeners: 0, bandwidthLimitKbps: 0, ...over,
  };
}

function snap(nodes: SnapshotNode[], readyOn: string[], extra: Partial<Snapshot> = {}): Snapshot {
  return {
    seq: 2, contentVersion: 1, etcdConnected: true, stateLoaded: true, draining: false, outOfService: false, etcdSeenAt: 0, self: 'a', master: 'a', dropped: 0, zoneSerial: 1,
    credentialSalt: '', nodes,
    mounts: [
      { slot: 0, path: '/live.ogg', relay: false, transcoded: false, kickedAt: 0, fallbackPath: null, sourceConnected: true, listeners: 0, readyOn, info: { ...NO_STREAM_INFO, username: 'src-live' }, credential: '' },
      { slot: 1, path: '/main.ogg', relay: false, transcoded: false, kickedAt: 0, fallbackPath: '/live.ogg', sourceConnected: false, listeners: 0, readyOn: [], info: NO_STREAM_INFO, credential: '' },
    ],
    ...extra,
  };
}

describe('load balancing', () => {
  it('scores headroom from listeners and bandwidth', () => {
    assert.equal(headroom(node('a')), 1);
    assert.equal(headroom(node('a', { maxListeners: 100, listeners: 25 })), 0.75);
    assert.equal(headroom(node('a', { bandwidthLimitKbps: 1000, bandwidthKbps: 900, maxListeners: 10, listeners: 5 })), 0.09999999999999998);
    assert.equal(headroom(node('a', { maxListeners: 10, listeners: 12 })), 0);
  });

  it('prefers this node while it has room', () => {
    const s = snap([node('a'), node('bb'), node('ccc')], ['a', 'bb', 'ccc']);
    assert.equal(chooseNode(s, s.mounts[0]!, 'a')?.node.name, 'a');
  });

  it('skips nodes that are full or dead, and spreads over the best, whether or not they have the mount yet', () => {
    const s = snap([node('a', { maxListeners: 1, listeners: 1 }), node('bb', { alive: false }), node('ccc'), node('dddd')], ['a', 'bb', 'ccc']);
    const seen = new Map<string, number>();
    const r = rng(3);
    for (let i = 0; i < 1000; i++) {
      const c = chooseNode(s, s.mounts[0]!, 'a', r)!;
      seen.set(c.node.name, (seen.get(c.node.name) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['ccc', 'dddd']);
    assert.ok(Math.abs(seen.get('ccc')! - 500) < 100, 'roughly even');
  });

  it('weights by headroom and leaves out nodes under half the best', () => {
    const s = snap([node('a', { maxListeners: 1, listeners: 1 }), node('bb', { maxListeners: 100, listeners: 10 }), node('ccc', { maxListeners: 100, listeners: 60 }), node('dddd', { maxListeners: 100, listeners: 95 })], ['a', 'bb', 'ccc', 'dddd']);
    const seen = new Map<string, number>();
    const r = rng(4);
    for (let i = 0; i < 2000; i++) {
      const c = chooseNode(s, s.mounts[0]!, 'a', r)!;
      seen.set(c.node.name, (seen.get(c.node.name) ?? 0) + 1);
    }
    assert.ok(!seen.has('dddd'), 'a node with 5% room is not among the best');
    assert.ok(!seen.has('ccc'), '40% room is under half of 90%');
    assert.equal(seen.get('bb'), 2000);
  });

  it('out of service, sends listeners to other nodes, and serves them itself only when it knows of nobody else', () => {
    const out = snap([node('a', { alive: false }), node('bb')], ['a', 'bb'], { outOfService: true });
    assert.equal(chooseNode(out, out.mounts[0]!, 'a')?.node.name, 'bb');
    const alone = snap([node('a', { alive: false }), node('bb', { alive: false })], ['a'], { outOfService: true });
    assert.equal(chooseNode(alone, alone.mounts[0]!, 'a')?.node.name, 'a');
    const dead = snap([node('a', { alive: false })], ['a']);
    assert.equal(chooseNode(dead, dead.mounts[0]!, 'a'), null, 'a node not alive for another reason is never chosen');
  });

    it('returns null when nobody can serve', () => {
    const s = snap([node('a', { maxListeners: 1, listeners: 1 })], ['a']);
    assert.equal(chooseNode(s, s.mounts[0]!, 'a'), null);
    const none = snap([node('a')], []);
    assert.equal(chooseNode(none, none.mounts[0]!, 'a'), null);
  });
});

describe('listener routing', () => {
  const s = snap([node('a', { maxListeners: 1, listeners: 1 }), node('bb', { addresses: ['2001:db8::2'], icecastPort: 8010, httpPort: 8080 })], ['a', 'bb']);
  const http = { nodeName: 'a', proxy: true, port: 'http' } as const;
  it('refuses unknown and malformed mounts with 404', () => {
    for (const p of ['/nope.ogg', '/../live.ogg', '/live.ogg/', '//live.ogg']) {
      assert.deepEqual(routeListener(s, p, http), { kind: 'error', status: 404, text: 'no such mount\n' });
    }
  });
  it('sends a listener of a full node to another node\'s same port', () => {
    assert.deepEqual(routeListener(s, '/live.ogg', http), { kind: 'redirect', location: 'http://[2001:db8::2]:8080/live.ogg' });
    assert.deepEqual(routeListener(s, '/live.ogg', { ...http, port: 'icecast' }), { kind: 'redirect', location: 'http://[2001:db8::2]:8010/live.ogg' });
  });
  it('sends an HTTPS listener only to a node that speaks HTTPS, by name, and streams HTTPS even in redirect mode', () => {
    const https = { ...http, port: 'https', domain: 'radio.test' } as const;
    assert.equal((routeListener(s, '/live.ogg', https) as { status: number }).status, 503, 'bb has no certificate');
    const tls = snap([node('a', { maxListeners: 1, listeners: 1, httpsPort: 443 }), node('bb', { httpsPort: 8443 }), node('c', { httpsPort: 0 })], ['a', 'bb', 'c']);
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(routeListener(tls, '/live.ogg', { ...https, random: () => i / 20 }), { kind: 'redirect', location: 'https://bb.radio.test:8443/live.ogg' });
    }
    const self = snap([node('a', { httpsPort: 443 })], ['a']);
    assert.deepEqual(routeListener(self, '/live.ogg', { ...https, proxy: false }), { kind: 'serve' });
    const dflt = snap([node('a', { maxListeners: 1, listeners: 1 }), node('bb', { httpsPort: 443 })], ['a', 'bb']);
    assert.deepEqual(routeListener(dflt, '/live.ogg', https), { kind: 'redirect', location: 'https://bb.radio.test/live.ogg' });
  });
  it('serves a mount live only on another node (its hub pulls it from there)', () => {
    const elsewhere = snap([node('a'), node('bb')], ['bb']);
    assert.deepEqual(routeListener(elsewhere, '/live.ogg', http), { kind: 'serve' });
    assert.deepEqual(routeListener(elsewhere, '/live.ogg', { ...http, port: 'icecast' }), { kind: 'serve' });
  });
  it('serves a mount without source through its live fallback', () => {
    assert.deepEqual(routeListener(s, '/main.ogg', { ...http, nodeName: 'bb' }), { kind: 'serve' });
  });
  it('lets the hub look for a mount not yet live in the snapshot when it has room, and 503s when it has none or redirects', () => {
    const off = snap([node('a')], []);
    assert.deepEqual(routeListener(off, '/live.ogg', http), { kind: 'serve' });
    const full = snap([node('a', { maxListeners: 1, listeners: 1 })], []);
    assert.equal((routeListener(full, '/live.ogg', http) as { status: number }).status, 503);
    assert.equal((routeListener(off, '/live.ogg', { ...http, proxy: false }) as { status: number }).status, 503);
  });
  it('serves before this node has registered (it is not in its own snapshot yet)', () => {
    const other = snap([node('bb')], ['bb']);
    assert.deepEqual(routeListener(other, '/live.ogg', http), { kind: 'serve' });
    assert.equal(routeListener(other, '/live.ogg', { ...http, proxy: false }).kind, 'redirect');
  });
  it('redirects every listener on HTTP_PORT in redirect mode, to this node\'s ICECAST_PORT too, which serves it', () => {
    const one = snap([node('a')], ['a']);
    assert.deepEqual(routeListener(one, '/live.ogg', { ...http, proxy: false }), { kind: 'redirect', location: 'http://10.0.0.1:8000/live.ogg' });
    assert.deepEqual(routeListener(one, '/live.ogg', { ...http, proxy: false, port: 'icecast' }), { kind: 'serve' });
  });
});

describe('remembered routing', () => {
  it('answers like routeListener, and spreads redirects when this node is full', () => {
    const full = snap([node('a', { maxListeners: 1, listeners: 1 }), node('bb'), node('ccc')], ['a', 'bb', 'ccc']);
    const router = new ListenRouter({ nodeName: 'a', proxy: true, port: 'http' });
    const targets = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const d = router.route(full, '/live.ogg');
      assert.equal(d.kind, 'redirect');
      if (d.kind === 'redirect') targets.add(d.location);
    }
    assert.equal(targets.size, 2, 'random choices are not frozen by the memo');
    const free = snap([node('a'), node('bb')], ['a', 'bb']);
    assert.deepEqual(router.route(free, '/live.ogg'), { kind: 'serve' });
    assert.equal(router.streams(free, '/live.ogg'), true);
    assert.deepEqual(router.route({ ...free, seq: 3 }, '/nope.ogg'), { kind: 'error', status: 404, text: 'no such mount\n' });
    assert.equal(router.streams({ ...free, seq: 3 }, '/nope.ogg'), false);
  });
});

describe('front door classification', () => {
  const streams = (p: string): boolean => p === '/live.ogg';
  const c = (s: string): string => classify(Buffer.from(s, 'latin1'), streams);
  it('gives short HTTP/1.1 requests to uWS', () => {
    for (const r of ['GET / HTTP/1.1\r\n', 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /live.ogg.m3u HTTP/1.1\r\n', 'HEAD /nope HTTP/1.1\n', 'OPTIONS /live.ogg HTTP/1.1\r\n', 'DELETE /x HTTP/1.1\r\n', 'GET /x.ogg?a=1 HTTP/1.1\r\n']) {
      assert.equal(c(r), 'uws', r);
    }
  });
  it('gives streams, sources, title updates, other versions and malformed lines to the door', () => {
    for (const r of ['GET /live.ogg HTTP/1.1\r\n', 'HEAD /live.ogg?x=1 HTTP/1.1\r\n', 'GET / HTTP/1.0\r\n', 'SOURCE /live.ogg ICE/1.0\r\n', 'SOURCE /live.ogg HTTP/1.0\r\n',
      'PUT /live.ogg HTTP/1.1\r\n', 'GET /admin/metadata?mount=/x&mode=updinfo HTTP/1.1\r\n', 'get / HTTP/1.1\r\n', 'GET  / HTTP/1.1\r\n', '\x16\x03\x01\x02\x00\n', `GET /${'a'.repeat(3000)} HTTP/1.1\r\n`]) {
      assert.equal(c(r), 'door', JSON.stringify(r.slice(0, 40)));
    }
    assert.equal(c('x'.repeat(MAX_REQUEST_LINE)), 'door', 'a line that never ends');
  });
  it('waits for the rest of a request line that arrives in pieces', () => {
    for (const r of ['', 'G', 'GET / HTT', 'GET /live.ogg HTTP/1.1\r']) assert.equal(c(r), 'more', r);
  });
});

describe('chunked source bodies', () => {
  it('decodes chunks split at every byte, with extensions and trailers', () => {
    const body = Buffer.from('4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n');
    for (const step of [1, 2, 3, 7, body.length]) {
      const d = new ChunkedDecoder();
      const out: Buffer[] = [];
      for (let i = 0; i < body.length; i += step) out.push(...d.push(body.subarray(i, i + step)));
      assert.equal(Buffer.concat(out).toString(), 'Wikipedia in\r\n\r\nchunks.', `step ${step}`);
      assert.equal(d.done, true);
      assert.equal(d.error, null);
    }
  });
  it('stops at a malformed size or an over-long size line', () => {
    const bad = new ChunkedDecoder();
    assert.deepEqual(bad.push(Buffer.from('zz\r\nabc')), []);
    assert.equal(bad.error, 'malformed chunk size');
    const long = new ChunkedDecoder();
    long.push(Buffer.from('1'.repeat(5000)));
    assert.equal(long.error, 'chunk size line too long');
    const overrun = new ChunkedDecoder();
    overrun.push(Buffer.from('2\r\nabc\r\n'));
    assert.equal(overrun.error, 'chunk data longer than its size');
  });
});

describe('carrying a source', () => {
  it('passes the request on with the login rewritten and a chunked body announced as unframed', () => {
    const head = new HeadParser().feed(Buffer.from('PUT /live.ogg?x=1 HTTP/1.1\r\nHost: stream\r\nAuthorization: Basic AAAA\r\nTransfer-Encoding: chunked\r\nIce-Name: My radio\r\nExpect: 100-continue\r\n\r\n'));
    assert.equal(head.kind, 'head');
    if (head.kind !== 'head') return;
    assert.equal(upstreamHead(head.head, 'Basic BBBB', { name: 'a', host: '10.0.0.1', port: 8001 }),
      'PUT /live.ogg?x=1 HTTP/1.1\r\nHost: 10.0.0.1:8001\r\nAuthorization: Basic BBBB\r\nice-name: My radio\r\nexpect: 100-continue\r\n\r\n');
  });
});

describe('playlists', () => {
  it('name the cluster stream URL', () => {
    assert.equal(streamUrl('radio.example.com', 80, '/live.ogg'), 'http://stream.radio.example.com/live.ogg');
    assert.equal(streamUrl('radio.example.com', 8080, '/live.ogg'), 'http://stream.radio.example.com:8080/live.ogg');
    assert.equal(m3u('http://x/y'), 'http://x/y\n');
    assert.equal(pls('http://x/y', '/y'), '[playlist]\nNumberOfEntries=1\nFile1=http://x/y\nTitle1=/y\nLength1=-1\nVersion=2\n');
    assert.deepEqual(playlistOf('/a/live.ogg.m3u'), { mount: '/a/live.ogg', kind: 'm3u' });
    assert.deepEqual(playlistOf('/live.ogg.PLS'), { mount: '/live.ogg', kind: 'pls' });
    assert.equal(playlistOf('/live.ogg'), null);
  });
});

describe('hub: a listener joining while the codec headers arrive', () => {
  it('gets each header page once, whatever moment it joins at', async () => {
    // A real upstream on port 0 that sends the Ogg header pages one at a time, as Icecast may.
    const bos = oggPage({ bos: true, granule: 0n, body: 30 });
    const setup = oggPage({ granule: 0n, body: 300 });
    const audio = Array.from({ length: 5 }, (_, i) => oggPage({ granule: BigInt(1000 * (i + 1)), body: 200 }));
    let upstream: ServerResponse | null = null;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/ogg' });
      upstream = res;
      res.write(bos);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const got: Buffer[][] = [[], []];
    const client = (k: number): Client => ({
      icy: false,
      begin: () => ({
        write: (b: Buffer) => (got[k]!.push(Buffer.from(b)), true), close: () => undefined, onDrain: null, onClose: null, closed: false, bytes: 0,
        ownableFd: () => -1, handedOver: () => assert.fail('not a socket'),
      }),
      fail: () => assert.fail('no stream'),
    });
    const hub = new Hub({ path: '/x.ogg', burstBytes: 65536, queueBytes: 1 << 20, targets: () => [{ name: 'up', host: '127.0.0.1', port }], onClosed: () => undefined });
    try {
      hub.add(client(0));
      await waitFor(() => got[0]!.length > 0, 5000, 'the first listener to start');
      hub.add(client(1)); // joins after the BOS page, before the setup page
      upstream!.write(setup);
      for (const a of audio) upstream!.write(a);
      await waitFor(() => Buffer.concat(got[1]!).length >= bos.length + setup.length + audio.length * audio[0]!.length, 5000, 'the whole stream');
      for (const k of [0, 1]) {
        const pages = new OggSplitter().push(Buffer.concat(got[k]!));
        assert.equal(pages.filter((p) => p.bos).length, 1, `listener ${k} gets one BOS page`);
        assert.deepEqual(pages.map((p) => p.granule), [0n, 0n, 1000n, 2000n, 3000n, 4000n, 5000n], `listener ${k}: headers once, then the audio`);
      }
    } finally {
      hub.close('test');
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('hub: a crowd of Ogg listeners', () => {
  it('gets audio pages held into fewer writes, headers once per chain, and a late joiner starts on a page', async () => {
    const serial = (s: number): { bos: Buffer; setup: Buffer } => ({
      bos: oggPage({ bos: true, granule: 0n, body: 30, serial: s }),
      setup: oggPage({ granule: 0n, body: 300, serial: s }),
    });
    const audio = (s: number, from: number): Buffer[] => Array.from({ length: 12 }, (_, i) => oggPage({ granule: BigInt(1000 * (from + i)), body: 1000, serial: s }));
    let upstream: ServerResponse | null = null;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/ogg' });
      upstream = res;
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const got: Buffer[][] = [];
    const client = (): Client => {
      const mine: Buffer[] = [];
      got.push(mine);
      const write = (b: Buffer): boolean => (mine.push(Buffer.from(b)), true);
      return {
        icy: false,
        begin: () => ({ write, close: () => undefined, onDrain: null, onClose: null, closed: false, bytes: 0, ownableFd: () => -1, handedOver: () => assert.fail('not a socket') }),
        fail: () => assert.fail('no stream'),
      };
    };
    const hub = new Hub({ path: '/x.ogg', burstBytes: 1 << 20, queueBytes: 1 << 20, targets: () => [{ name: 'up', host: '127.0.0.1', port }], onClosed: () => undefined });
    // Each group in one write: without holding, the hub would still write its pages one by one.
    const send = async (pages: Buffer[]): Promise<void> => {
      upstream!.write(Buffer.concat(pages));
      await new Promise((r) => setTimeout(r, 20));
    };
    try {
      for (let i = 0; i < 600; i++) hub.add(client());
      await waitFor(() => upstream !== null, 5000, 'the upstream');
      const one = serial(7);
      const two = serial(8);
      await send([one.bos, one.setup]); // the 600 start on the stream's first bytes
      await send(audio(7, 1));
      await waitFor(() => got[0]!.length > 2, 5000, 'the first chain');
      hub.add(client()); // joins in the middle of the first chain, in a crowd
      await send(audio(7, 13));
      await send([two.bos, two.setup, ...audio(8, 1)]);
      const wantAll = [0n, 0n, ...Array.from({ length: 24 }, (_, i) => BigInt(1000 * (i + 1))), 0n, 0n, ...Array.from({ length: 12 }, (_, i) => BigInt(1000 * (i + 1)))];
      const granules = (k: number): bigint[] => new OggSplitter().push(Buffer.concat(got[k]!)).map((p) => p.granule);
      await waitFor(() => granules(0).length === wantAll.length, 5000, 'the whole stream to the first listener');
      await waitFor(() => granules(600).length >= wantAll.length, 5000, 'the late joiner to the end');
      for (const k of [0, 599]) {
        assert.deepEqual(granules(k), wantAll, `listener ${k}: each chain's headers once, then its audio in order`);
        assert.ok(got[k]!.length < 20, `listener ${k}: 40 pages in ${got[k]!.length} writes`);
      }
      // Its burst (1 MiB) reaches back to the chain's first audio page: it hears all of it, headers once.
      const late = new OggSplitter().push(Buffer.concat(got[600]!));
      assert.deepEqual(late.map((p) => p.granule), wantAll, 'the late joiner: the headers, then every page once, in order');
      assert.equal(late.filter((p) => p.bos).length, 2, 'one BOS page per chain');
    } finally {
      hub.close('test');
      server.closeAllConnections();
      server.close();
    }
  });
});
