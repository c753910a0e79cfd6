/**
 * The DNS server's pieces on their own, driven with more input than a
 * network test can send: the answer cache stays small under random names
 * and types, the rate-limiting table stays bounded under millions of
 * prefixes and forgets them in small steps, and the TCP frame reader copies
 * a number of bytes proportional to what it receives however it is cut.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { ANSWER_CACHE_ENTRIES, AnswerCache, type Answer } from '../../../src/dns/answers.ts';
import { RRL_ENTRIES, Rrl } from '../../../src/dns/rrl.ts';
import { FrameReader } from '../../../src/dns/tcp-frames.ts';
import { latencyOfWord } from '../../../src/dns/udp-batch.ts';
import { TYPE } from '../../../src/dns/wire.ts';
import { buildZone, type ZoneConfig } from '../../../src/dns/zone.ts';
import type { Snapshot } from '../../../src/ipc/snapshot.ts';

const CFG: ZoneConfig = { domain: 'radio.test', nameservers: ['a'], ttl: 5, apexTtl: 3600, maxRecords: 8 };

/** A zone of `n` alive nodes (buildZone reads only the nodes of a snapshot). */
function zoneOf(n: number): ReturnType<typeof buildZone> {
  const nodes = Array.from({ length: n }, (_, i) => ({ name: `n${i}`, addresses: [`127.0.20.${i + 1}`], alive: true, etcdHealthy: true }));
  return buildZone({ nodes } as unknown as Snapshot, CFG, 1);
}

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return Math.floor((s / 2 ** 32) * n);
  };
}

/** The records of an answer as dns-packet reads them (the question is the query's, left out here). */
function records(a: Answer): dnsPacket.Packet {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0x8000 | a.flags, 2);
  head.writeUInt16BE(a.counts[0], 6);
  head.writeUInt16BE(a.counts[1], 8);
  head.writeUInt16BE(a.counts[2], 10);
  return dnsPacket.decode(Buffer.concat([head, a.rotations[0]!]));
}

describe('DNS answer cache', () => {
  it('keeps one NODATA answer for every name and type, and stays small under random names and types', (t) => {
    const zone = zoneOf(3);
    const cache = new AnswerCache(zone, CFG);
    const names = [...zone.names.keys()];
    const rnd = rng(1);
    const queries = 786_432;
    const t0 = performance.now();
    for (let i = 0; i < queries; i++) {
      const name = rnd(4) === 0 ? `x${rnd(1e9)}.radio.test` : names[rnd(names.length)]!;
      cache.get(name, rnd(65_536), rnd(2) === 1);
    }
    // At most: each name x (A, AAAA, SOA, NS, ANY) x EDNS or not, and one REFUSED, NXDOMAIN, NODATA per EDNS flag.
    const most = names.length * 5 * 2 + 6;
    t.diagnostic(`${queries} queries of random types over ${names.length} names and random names in ${(performance.now() - t0).toFixed(0)} ms: ${cache.size} cached answers (at most ${most})`);
    assert.ok(cache.size <= most, `${cache.size} cached answers`);
    // The shared NODATA answer is the right one for any name and type: no records, the zone's SOA.
    const mx = cache.get('n1.radio.test', 15, false);
    assert.equal(cache.get('radio.test', 16, false), mx);
    assert.equal(cache.get('n2.radio.test', TYPE.SOA, false), mx, 'SOA below the apex is NODATA');
    const p = records(mx);
    assert.equal(p.answers?.length, 0);
    assert.equal(p.authorities?.[0]?.type, 'SOA');
    assert.equal(p.authorities?.[0]?.name, 'radio.test');
    assert.notEqual(cache.get('n1.radio.test', 15, true), mx, 'with EDNS the answer carries OPT');
    assert.equal(records(cache.get('n1.radio.test', 15, true)).additionals?.[0]?.type, 'OPT');
  });

  it('holds a hard bound whatever the zone, and answers correctly past it', () => {
    const zone = zoneOf(300);
    const cache = new AnswerCache(zone, CFG, 64);
    for (const name of zone.names.keys()) for (const type of [TYPE.A, TYPE.AAAA, TYPE.NS, TYPE.ANY]) cache.get(name, type, true);
    assert.equal(cache.size, 64);
    const a = records(cache.get('n7.radio.test', TYPE.A, false));
    assert.deepEqual(a.answers?.map((r) => `${r.name} ${r.type} ${r.type === 'A' ? r.data : ''}`), ['n7.radio.test A 127.0.20.8']);
    assert.ok(ANSWER_CACHE_ENTRIES >= 300 * 5 * 2, 'the default holds every answer of a 300-node zone');
  });
});

describe('DNS response rate limiting table', () => {
  it('stays within its bound under millions of prefixes, and the ones that find it full are limited together', (t) => {
    const rrl = new Rrl(50);
    const prefixes = 3_000_000;
    let now = 1_000_000;
    let answered = 0;
    let most = 0;
    const t0 = performance.now();
    for (let i = 0; i < prefixes; i++) {
      if (i % 1000 === 0) now++; // a million new prefixes a second
      if (rrl.checkKey(i, now) === 'answer') answered++;
      most = Math.max(most, rrl.size);
    }
    const ms = performance.now() - t0;
    t.diagnostic(`${prefixes} prefixes in ${(ms / 1000).toFixed(1)} s: table at most ${most} entries (bound ${RRL_ENTRIES}); ${rrl.overflowed} checks met a full table; ${answered} answered`);
    assert.ok(most <= RRL_ENTRIES);
    assert.ok(rrl.overflowed > 0);
    // Those that met a full table shared one bucket: about 50 a second of the 3 s, not one each.
    assert.ok(answered - (prefixes - rrl.overflowed) <= 50 * 4, `${answered} answered`);
  });

  it('keeps limiting a prefix it tracks while a flood of new prefixes fills the table', () => {
    const rrl = new Rrl(10, { maxEntries: 1000 });
    const victim = 0x7f0001;
    let toVictim = 0;
    for (let ms = 0; ms < 5000; ms++) {
      for (let k = 0; k < 20; k++) rrl.checkKey(1_000_000 + ms * 20 + k, ms);
      if (rrl.checkKey(victim, ms) === 'answer') toVictim++;
    }
    // 10 a second for 5 s plus the first second's burst: the victim's prefix is never forgotten while it is busy.
    assert.ok(toVictim <= 10 * 6 + 1, `${toVictim} answers to the victim's prefix`);
    assert.ok(rrl.size <= 1000);
  });

  it('sweeps in steps that each look at a bounded number of entries, and forgets quiet prefixes', (t) => {
    const rrl = new Rrl(50);
    const n = RRL_ENTRIES;
    for (let i = 0; i < n; i++) rrl.checkKey(i, 1000);
    assert.equal(rrl.size, n);
    // Time moves on with no new prefix: steps at 50 ms intervals forget the table bit by bit.
    let worst = 0;
    let examined = 0;
    let now = 1000;
    const stepsBefore = rrl.steps;
    while (rrl.size > 1 && now < 20_000) {
      now += 50;
      const t0 = performance.now();
      rrl.checkKey(-5, now);
      worst = Math.max(worst, performance.now() - t0);
      examined = Math.max(examined, rrl.lastStepExamined);
    }
    const steps = rrl.steps - stepsBefore;
    t.diagnostic(`${n} quiet prefixes forgotten in ${steps} steps over ${((now - 1000) / 1000).toFixed(1)} s; each step looked at ${examined} entries at most and took ${worst.toFixed(2)} ms at most`);
    assert.ok(rrl.size <= 1, `${rrl.size} left`);
    assert.ok(examined <= Math.ceil(n / 40), `${examined} entries in one step`);
    assert.ok(now - 1000 <= 2000 + 2500, 'forgotten within about two passes');
    // Steps run on the query path at most once per 50 ms, not per query.
    const before = rrl.steps;
    for (let i = 0; i < 10_000; i++) rrl.checkKey(-5, now + 25);
    assert.equal(rrl.steps, before);
  });

  it('slips every second limited response and answers again once the bucket refills', () => {
    const rrl = new Rrl(5);
    const v = Array.from({ length: 11 }, () => rrl.checkKey(1, 0));
    assert.deepEqual(v, ['answer', 'answer', 'answer', 'answer', 'answer', 'drop', 'slip', 'drop', 'slip', 'drop', 'slip']);
    assert.equal(rrl.checkKey(1, 1000), 'answer');
    assert.equal(new Rrl(0).checkKey(1, 0), 'answer');
  });
});

describe('DNS over TCP frames', () => {
  const frame = (len: number, fill = 7): Buffer => {
    const f = Buffer.alloc(2 + len, fill);
    f.writeUInt16BE(len, 0);
    return f;
  };

  it('copies bytes in proportion to what arrives, a byte at a time or in one piece', (t) => {
    const f = frame(4096);
    const r = new FrameReader(12, 4096);
    const t0 = performance.now();
    for (let i = 0; i < f.length - 1; i++) {
      r.push(f.subarray(i, i + 1));
      assert.equal(r.next(), 'incomplete');
    }
    r.push(f.subarray(f.length - 1));
    const msg = r.next();
    const ms = performance.now() - t0;
    // Joining the whole buffer on every byte copied n(n+1)/2 bytes: 8.4 MB for this frame.
    t.diagnostic(`a 4096-byte query a byte at a time: ${r.copied} bytes copied (${ms.toFixed(1)} ms); joined on every byte it was ${((f.length * (f.length + 1)) / 2 / 1e6).toFixed(1)} MB`);
    assert.ok(Buffer.isBuffer(msg) && msg.equals(f.subarray(2)));
    assert.equal(r.copied, f.length);
    assert.equal(r.buffered, 0);

    const many = Buffer.concat(Array.from({ length: 1000 }, (_, i) => frame(12 + (i % 40), i & 0xff)));
    const whole = new FrameReader(12, 4096);
    whole.push(many);
    let n = 0;
    for (let m = whole.next(); m !== 'incomplete'; m = whole.next()) {
      assert.ok(Buffer.isBuffer(m) && m.length === 12 + (n % 40) && m[0] === (n & 0xff));
      n++;
    }
    assert.equal(n, 1000);
    assert.equal(whole.copied, 0, 'frames in one chunk are views, not copies');
  });

  it('reads frames cut anywhere, a length split over two chunks included', () => {
    const stream = Buffer.concat([frame(12, 1), frame(300, 2), frame(40, 3), frame(12, 4)]);
    const rnd = rng(9);
    for (let run = 0; run < 200; run++) {
      const r = new FrameReader(12, 4096);
      const got: number[] = [];
      let copied = 0;
      for (let off = 0; off < stream.length;) {
        const n = 1 + rnd(run % 2 === 0 ? 3 : 100);
        r.push(stream.subarray(off, off + n));
        off += n;
        for (let m = r.next(); m !== 'incomplete'; m = r.next()) {
          assert.ok(Buffer.isBuffer(m));
          got.push(m[0]!);
        }
        copied = r.copied;
      }
      assert.deepEqual(got, [1, 2, 3, 4]);
      assert.ok(copied <= 2 * stream.length, `${copied} bytes copied`);
    }
  });

  it('keeps the start of a frame left at the end of a large read, not the whole read', () => {
    const r = new FrameReader(12, 4096);
    const read = Buffer.concat([...Array.from({ length: 1400 }, () => frame(44)), frame(300).subarray(0, 100)]);
    r.push(Buffer.from(read)); // a read of its own, as a socket delivers it
    let n = 0;
    while (Buffer.isBuffer(r.next())) n++;
    assert.equal(n, 1400);
    assert.equal(r.buffered, 100);
    assert.equal(r.retained, 100, `${r.retained} bytes kept for a 100-byte partial frame of a ${read.length}-byte read`);
    r.push(frame(300).subarray(100));
    const last = r.next();
    assert.ok(Buffer.isBuffer(last) && last.length === 300);
  });

  it('says "not a query" as soon as a length is out of bounds', () => {
    for (const len of [0, 11, 4097, 65_535]) {
      const r = new FrameReader(12, 4096);
      r.push(Buffer.from([len >> 8]));
      assert.equal(r.next(), 'incomplete');
      r.push(Buffer.from([len & 0xff]));
      assert.equal(r.next(), 'not a query');
    }
  });
});

describe('the DNS addon\'s latency words', () => {
  it('stand for each µs below 128, then for buckets about 1.5% wide that tile the range up to seconds', () => {
    for (let w = 0; w < 128; w++) assert.equal(latencyOfWord(w), w);
    assert.equal(latencyOfWord(128), 128);
    assert.equal(latencyOfWord(192), 256, 'each power of two starts a new run of 64 words');
    const words = 128 + 16 * 64;
    for (let w = 128; w < words - 1; w++) {
      const lo = latencyOfWord(w);
      const next = latencyOfWord(w + 1);
      assert.ok(next > lo, `word ${w + 1} above word ${w}`);
      assert.ok((next - lo) / lo <= 1 / 64, `word ${w}: ${lo} to ${next}`);
    }
    assert.ok(latencyOfWord(words - 1) > 4_000_000, 'the last word is past four seconds');
  });
});
