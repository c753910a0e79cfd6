/**
 * The authoritative DNS server with dig as the client, over UDP and TCP:
 * the protocol rules, node death and arrival, response rate limiting, and a
 * fuzz run of random and mutated packets after which the server still
 * answers correctly. Two radiod nodes share one etcd.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import { AnswerCache } from '../src/dns/answers.ts';
import { parseQuery } from '../src/dns/wire.ts';
import { buildZone } from '../src/dns/zone.ts';
import { prefixOf } from '../src/dns/rrl.ts';
import type { Snapshot } from '../src/ipc/snapshot.ts';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from '../harness/net.ts';
import { ROOT } from '../harness/process.ts';
import { dig } from '../harness/dig.ts';
import { httpGet, startEtcd, startRadiod, type Etcd, type Radiod } from '../harness/components.ts';

const TTL = 3;

describe('DNS', () => {
  let etcd: Etcd;
  let a: Radiod;
  let b: Radiod;
  const nodes: Radiod[] = [];
  let metricsA = '';
  /** A counter of node a's Prometheus metrics. */
  const counter = async (name: string): Promise<number> =>
    Number(new RegExp(`^${name} (\\d+)`, 'm').exec((await httpGet(`http://${metricsA}/metrics`)).body)?.[1] ?? NaN);
  before(async () => {
    etcd = await startEtcd();
    const extra = ['--nameservers', 'a,ns.elsewhere.example', '--dns-rrl', '200'];
    metricsA = `127.0.0.2:${await freePort('127.0.0.2')}`;
    a = await startRadiod({ name: 'a', host: '127.0.0.2', etcd: etcd.url, leaseTtl: TTL, extraArgs: extra, metricsAddr: metricsA });
    // Node b answers UDP through node:dgram, the fallback when the batched-UDP addon is not built.
    b = await startRadiod({ name: 'b', host: '127.0.0.3', etcd: etcd.url, leaseTtl: TTL, extraArgs: extra, env: { RADIOAI_DNS_UDP: 'dgram' } });
    nodes.push(a, b);
    for (const n of [a, b]) {
      await waitFor(async () => (await dig(n, 'stream.radio.test', 'A', '+short')).raw.trim().split('\n').length === 2, 15_000, `both nodes in ${n.name}'s DNS`);
    }
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await etcd?.stop();
  });

  for (const transport of ['udp', 'tcp'] as const) {
    const t = transport === 'tcp' ? ['+tcp'] : [];
    it(`answers the zone authoritatively over ${transport}`, async () => {
      const apex = await dig(a, 'radio.test', 'A', ...t);
      assert.equal(apex.status, 'NOERROR');
      assert.ok(apex.flags.includes('aa') && !apex.flags.includes('ra'));
      assert.deepEqual(apex.answer.map((l) => l.split(' ').at(-1)).sort(), ['127.0.0.2', '127.0.0.3']);
      assert.match(apex.answer[0]!, /^radio\.test\. 5 IN A /);
      const stream = await dig(b, 'stream.radio.test', 'A', ...t);
      assert.equal(stream.answer.length, 2);
      const node = await dig(a, 'b.radio.test', 'A', ...t);
      assert.deepEqual(node.answer, ['b.radio.test. 5 IN A 127.0.0.3']);
      const nx = await dig(a, 'nope.radio.test', 'A', ...t);
      assert.equal(nx.status, 'NXDOMAIN');
      assert.ok(nx.flags.includes('aa'));
      assert.match(nx.authority[0]!, /^radio\.test\. 3600 IN SOA a\.radio\.test\. hostmaster\.radio\.test\. \d+ 3600 600 86400 5$/);
      const nodata = await dig(a, 'b.radio.test', 'MX', ...t);
      assert.equal(nodata.status, 'NOERROR');
      assert.equal(nodata.answer.length, 0);
      assert.match(nodata.authority[0]!, / IN SOA /);
      const v6 = await dig(a, 'radio.test', 'AAAA', ...t);
      assert.equal(v6.status, 'NOERROR');
      assert.equal(v6.answer.length, 0, 'no IPv6 addresses: NODATA');
      const refused = await dig(a, 'example.com', 'A', ...t);
      assert.equal(refused.status, 'REFUSED');
      assert.ok(!refused.flags.includes('aa'));
      const ns = await dig(a, 'radio.test', 'NS', ...t);
      assert.deepEqual(ns.answer, ['radio.test. 3600 IN NS a.radio.test.', 'radio.test. 3600 IN NS ns.elsewhere.example.']);
      assert.ok(ns.additional.includes('a.radio.test. 5 IN A 127.0.0.2'), 'glue for the in-zone nameserver');
      const soa = await dig(a, 'radio.test', 'SOA', ...t);
      assert.equal(soa.answer.length, 1);
      const any = await dig(a, 'radio.test', 'ANY', ...t);
      assert.deepEqual(any.answer, ['radio.test. 5 IN HINFO "RFC8482" ""']);
      const etcdName = await dig(a, 'etcd.radio.test', 'A', ...t);
      assert.equal(etcdName.status, 'NOERROR', 'the name exists even when no node runs an etcd member');
    });
  }

  it('matches names case-insensitively and echoes the question as sent', async () => {
    const r = await dig(a, 'StReAm.RaDiO.TeSt', 'A');
    assert.equal(r.status, 'NOERROR');
    assert.match(r.raw, /;StReAm\.RaDiO\.TeSt\.\s+IN\s+A/);
    assert.equal(r.answer.length, 2);
  });

  it('speaks EDNS0: echoes OPT, honours the size, BADVERS for version 1, no OPT without EDNS', async () => {
    const e = await dig(a, 'radio.test', 'A', '+bufsize=1400');
    assert.match(e.raw, /; EDNS: version: 0, flags:; udp: 1232/);
    const noedns = await dig(a, 'radio.test', 'A', '+noedns');
    assert.doesNotMatch(noedns.raw, /EDNS:/);
    const v1 = await dig(a, 'radio.test', 'A', '+edns=1', '+noednsnegotiation');
    assert.equal(v1.status, 'BADVERS');
    const opcode = await dig(a, 'radio.test', '+opcode=2', '+noedns');
    assert.equal(opcode.status, 'NOTIMP');
  });

  it('sets TC when an answer does not fit the client\'s UDP size, and answers in full over TCP', async () => {
    // A zone with many addresses: two nodes advertising 16 addresses each (the most a node may have),
    // their own loopback address first and 15 IPv6 ones, so 30 AAAA records for stream.radio.test,
    // more than 512 bytes. The first address is the one the other nodes probe (peer-watch.ts): an
    // unreachable one would have them revoke the node's lease, and its records would come and go.
    const six = (host: string, base: number): string => [host, ...Array.from({ length: 15 }, (_, i) => `2001:db8::${(base + i).toString(16)}`)].join(',');
    const big = await startRadiod({ name: 'big', host: '127.0.20.4', etcd: etcd.url, leaseTtl: TTL, extraArgs: ['--public-ip', six('127.0.20.4', 0x100), '--bind', '127.0.20.4', '--dns-max-records', '64'] });
    nodes.push(big);
    const big2 = await startRadiod({ name: 'big2', host: '127.0.20.5', etcd: etcd.url, leaseTtl: TTL, extraArgs: ['--public-ip', six('127.0.20.5', 0x200), '--bind', '127.0.20.5'] });
    nodes.push(big2);
    await waitFor(async () => (await dig(big, 'stream.radio.test', 'AAAA', '+noedns', '+ignore')).raw.includes('tc'), 15_000, 'a truncated answer');
    // Asked again and again, so that native code answers too (it truncates by the same rule).
    for (let k = 0; k < 3; k++) {
      const udp = await dig(big, 'stream.radio.test', 'AAAA', '+noedns', '+ignore');
      assert.ok(udp.flags.includes('tc'));
      assert.equal(udp.answer.length, 0);
    }
    const tcp = await dig(big, 'stream.radio.test', 'AAAA', '+tcp');
    assert.equal(tcp.answer.length, 30);
    for (let k = 0; k < 3; k++) {
      const fits = await dig(big, 'stream.radio.test', 'AAAA', '+bufsize=4096', '+ignore');
      assert.ok(!fits.flags.includes('tc'));
      assert.equal(fits.answer.length, 30);
    }
    await big2.stop();
    await big.stop();
    nodes.splice(nodes.indexOf(big), 2);
  });

  it('answers a question asked before from native code, as JavaScript answers it', async (t) => {
    // Node a's addon answers what its JavaScript answered once; node b (node:dgram) answers every query in
    // JavaScript. Each question goes four times to a (the first may be JavaScript's, the rest are native)
    // and once to b: header, question and records must be the same, the records' order aside.
    const opt = (size: number): dnsPacket.Answer => ({ type: 'OPT', name: '.', udpPayloadSize: size } as unknown as dnsPacket.Answer);
    const questions: [name: string, type: dnsPacket.RecordType, edns: number][] = [
      ['stream.radio.test', 'A', 0], ['StReAm.RaDiO.tEsT', 'A', 1232], ['radio.test', 'A', 4096], ['radio.test', 'NS', 0],
      ['radio.test', 'SOA', 1400], ['radio.test', 'AAAA', 0], ['nope.radio.test', 'A', 0], ['radio.test', 'MX', 512],
      ['example.com', 'A', 0], ['a.radio.test', 'A', 1232],
    ];
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.31.1', r));
    const waiting = new Map<number, (m: Buffer) => void>();
    sock.on('message', (m) => waiting.get(m.readUInt16BE(0))?.(m));
    let id = 100;
    const ask = (n: Radiod, q: Buffer): Promise<Buffer> => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from ${n.name}`)), 2000);
      waiting.set(q.readUInt16BE(0), (m) => (clearTimeout(timer), resolve(m)));
      sock.send(q, n.dnsPort, n.host);
    });
    const sorted = (m: Buffer): string => {
      const p = dnsPacket.decode(m);
      // Each node numbers its own zone versions: the SOA serials of a and b may differ by one.
      const rrs = (xs: dnsPacket.Answer[] | undefined): string[] => (xs ?? []).map((r) => JSON.stringify(r).replace(/"serial":\d+/, '"serial":0')).sort();
      return JSON.stringify([rrs(p.answers), rrs(p.authorities), rrs(p.additionals)]);
    };
    const answered = async (): Promise<number> =>
      (JSON.parse((await httpGet(`http://${a.host}:${a.httpPort}/debug/latency`)).body) as { dns_answer_us?: { count: number } }).dns_answer_us?.count ?? 0;
    const native0 = await counter('radioai_dns_native_answers_total');
    const timed0 = await answered();
    const firsts = new Set<string>();
    for (const [name, type, edns] of questions) {
      const query = (): Buffer => dnsPacket.encode({ type: 'query', id: id++, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }], ...(edns ? { additionals: [opt(edns)] } : {}) });
      const ref = await ask(b, query());
      for (let k = 0; k < 4; k++) {
        const q = query();
        const m = await ask(a, q);
        assert.equal(m.readUInt16BE(0), q.readUInt16BE(0), 'the query\'s ID');
        assert.deepEqual(m.subarray(2, 12), ref.subarray(2, 12), `${name} ${type}: flags and counts`);
        assert.deepEqual(m.subarray(12, q.length - (edns ? 11 : 0)), q.subarray(12, q.length - (edns ? 11 : 0)), `${name} ${type}: the question as sent`);
        assert.equal(sorted(m), sorted(ref), `${name} ${type}: the records`);
        if (name === 'stream.radio.test') firsts.add((dnsPacket.decode(m).answers![0] as { data: string }).data);
      }
    }
    assert.equal(firsts.size, 2, 'successive answers rotate the addresses');
    // Each name has its own turn: two names asked in alternation both rotate (one turn shared by all
    // answers would give each of them the same rotation every time).
    const alternate = new Map<string, Set<string>>([['stream.radio.test', new Set()], ['radio.test', new Set()]]);
    // Each asked once first, so that the addon knows both and answers all eight.
    for (let k = -2; k < 8; k++) {
      const name = k % 2 === 0 ? 'stream.radio.test' : 'radio.test';
      const m = await ask(a, dnsPacket.encode({ type: 'query', id: id++, questions: [{ type: 'A', name }] }));
      if (k >= 0) alternate.get(name)!.add((dnsPacket.decode(m).answers![0] as { data: string }).data);
    }
    sock.close();
    for (const [name, seen] of alternate) assert.equal(seen.size, 2, `${name} asked every other time still rotates`);
    // The counters reach the metrics within a second or two (flushed twice a second, read once).
    let native = 0;
    await waitFor(async () => (native = (await counter('radioai_dns_native_answers_total')) - native0) >= questions.length * 3, 5000, 'native answers counted').catch(() => undefined);
    t.diagnostic(`${native} of ${questions.length * 4} answers made natively`);
    assert.ok(native >= questions.length * 3, `${native} answers made natively`);
    // Their latency is in the worker's histogram with the others' (merged every couple of seconds).
    await waitFor(async () => (await answered()) - timed0 >= questions.length * 4, 10_000, 'every answer timed');
  });

  it('takes a dead node out within LEASE_TTL + 1 s and puts a new one in', async (t) => {
    const c = await startRadiod({ name: 'c', host: '127.0.0.5', etcd: etcd.url, leaseTtl: TTL });
    nodes.push(c);
    await waitFor(async () => (await dig(a, 'stream.radio.test', 'A', '+short')).raw.includes('127.0.0.5'), 10_000, 'c to appear');
    const t0 = Date.now();
    process.kill(c.proc.pid, 'SIGKILL');
    await waitFor(async () => !(await dig(a, 'stream.radio.test', 'A', '+short')).raw.includes('127.0.0.5'), (TTL + 1) * 1000, 'c to leave DNS', 100);
    t.diagnostic(`kill -9 to out of stream.radio.test: ${Date.now() - t0} ms (LEASE_TTL ${TTL} s)`);
    assert.equal((await dig(a, 'c.radio.test', 'A')).status, 'NXDOMAIN');
    await c.stop();
    nodes.pop();
  });

  it('keeps several queries on one TCP connection, and survives partial and oversized frames', async () => {
    const q = (id: number, name: string): Buffer => {
      const m = dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name }] });
      const f = Buffer.alloc(2 + m.length);
      f.writeUInt16BE(m.length, 0);
      m.copy(f, 2);
      return f;
    };
    const sock = connect(a.dnsPort, a.host);
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    await new Promise((r) => sock.once('connect', r));
    const frames = Buffer.concat([q(1, 'radio.test'), q(2, 'b.radio.test'), q(3, 'nope.radio.test')]);
    for (const byte of frames) sock.write(Buffer.from([byte]));
    await waitFor(() => {
      const all = Buffer.concat(got);
      let off = 0;
      let n = 0;
      while (off + 2 <= all.length && off + 2 + all.readUInt16BE(off) <= all.length) {
        off += 2 + all.readUInt16BE(off);
        n++;
      }
      return n === 3;
    }, 5000, 'three answers on one connection');
    const all = Buffer.concat(got);
    const ids: number[] = [];
    for (let off = 0; off < all.length; off += 2 + all.readUInt16BE(off)) ids.push(dnsPacket.decode(all.subarray(off + 2, off + 2 + all.readUInt16BE(off))).id!);
    assert.deepEqual(ids, [1, 2, 3]);
    // An oversized frame announcement followed by too little data, then a hang-up: nothing breaks.
    sock.write(Buffer.from([0xff, 0xff, 1, 2, 3]));
    sock.destroy();
    const tiny = connect(a.dnsPort, a.host);
    tiny.on('error', () => undefined);
    await new Promise((r) => tiny.once('connect', r));
    tiny.write(Buffer.from([0x00, 0x03, 1, 2, 3]));
    await new Promise((r) => tiny.once('close', r));
    assert.equal((await dig(a, 'radio.test', 'A', '+tcp')).status, 'NOERROR');
  });

  it('keeps memory bounded for a TCP client that pipelines queries and never reads the answers', async (t) => {
    const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${a.proc.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    const m = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'stream.radio.test' }] });
    const one = Buffer.alloc(2 + m.length);
    one.writeUInt16BE(m.length, 0);
    m.copy(one, 2);
    const batch = Buffer.concat(Array.from({ length: 2048 }, () => one)); // about 70 KB of queries
    const before = rss();
    const sock = connect(a.dnsPort, a.host);
    sock.on('error', () => undefined);
    sock.pause(); // never read an answer
    await new Promise((r) => sock.once('connect', r));
    let sent = 0;
    let closed = false;
    sock.once('close', () => (closed = true));
    const deadline = Date.now() + 15_000;
    // Up to 34 MB of queries (what grew radiod by about 800 MB when answers were queued without limit).
    while (!closed && sent < 34 * 1024 * 1024 && Date.now() < deadline) {
      if (!sock.write(batch)) await Promise.race([new Promise((r) => sock.once('drain', r)), new Promise((r) => setTimeout(r, 500))]);
      sent += batch.length;
    }
    const grown = rss() - before;
    t.diagnostic(`sent ${(sent / 1e6).toFixed(1)} MB of queries without reading; connection ${closed ? 'closed by radiod' : 'still open'}; radiod RSS grew ${(grown / 1e6).toFixed(1)} MB`);
    sock.destroy();
    assert.ok(grown < 64 * 1024 * 1024, `RSS grew by ${grown} bytes`);
    assert.equal((await dig(a, 'radio.test', 'A', '+tcp')).status, 'NOERROR');
    assert.equal((await dig(a, 'radio.test', 'A')).status, 'NOERROR');
  });

  it('reads and answers UDP in batches when the addon is built, through node:dgram when told to', () => {
    const built = existsSync(join(ROOT, 'native/udp-batch/build/Release/udp_batch.node'));
    assert.ok(built, 'scripts/setup.sh (npm ci) builds native/udp-batch');
    assert.match(a.proc.output(), /DNS over UDP in batches \(recvmmsg\/sendmmsg\)/);
    assert.match(b.proc.output(), /DNS over UDP with node:dgram; batched UDP unavailable: RADIOAI_DNS_UDP=dgram/);
  });

  for (const [name, floodFrom] of [['a', '127.9.9.9'], ['b', '127.9.10.9']] as const) {
  it(`rate-limits a flooding client prefix and not the others (node ${name}, ${name === 'a' ? 'batched' : 'dgram'})`, async (t) => {
    const a = name === 'a' ? nodes[0]! : nodes[1]!;
    const flood = createSocket('udp4');
    await new Promise<void>((r) => flood.bind(0, floodFrom, r));
    let full = 0;
    let slipped = 0;
    flood.on('message', (m) => {
      if ((m.readUInt16BE(2) & 0x0200) !== 0) slipped++;
      else full++;
    });
    const query = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'stream.radio.test' }] });
    const sent = 3000;
    const t0 = Date.now();
    for (let i = 0; i < sent; i++) {
      flood.send(query, a.dnsPort, a.host);
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
    }
    // Meanwhile another client is answered normally.
    const other = await dig(a, 'stream.radio.test', 'A');
    await new Promise((r) => setTimeout(r, 500));
    const secs = (Date.now() - t0) / 1000;
    flood.close();
    t.diagnostic(`flood of ${sent} queries in ${secs.toFixed(1)} s: ${full} full answers, ${slipped} truncated slips, the rest dropped`);
    assert.equal(other.status, 'NOERROR');
    assert.equal(other.answer.length, 2);
    // 200/s per prefix and per worker (2 workers), plus a one-second burst each.
    assert.ok(full <= 2 * 200 * (secs + 1), `${full} full answers`);
    assert.ok(full + slipped < sent, 'some were dropped');
    assert.ok(slipped > 0, 'every second dropped answer is sent truncated instead');
  });
  }

  it('survives random and mutated packets and still answers correctly', async () => {
    // In-process first: the parser and the cache over hundreds of thousands of inputs.
    // buildZone reads only the nodes of a snapshot.
    const zone = buildZone({ nodes: [] } as unknown as Snapshot, { domain: 'radio.test', nameservers: ['a'], ttl: 5, apexTtl: 3600, maxRecords: 8 }, 1);
    const cache = new AnswerCache(zone, { domain: 'radio.test', nameservers: ['a'], ttl: 5, apexTtl: 3600, maxRecords: 8 });
    const seedPackets = [
      dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'stream.radio.test' }] }),
      dnsPacket.encode({ type: 'query', id: 2, questions: [{ type: 'AAAA', name: 'radio.test' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer] }),
    ];
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const packets: Buffer[] = [];
    for (let i = 0; i < 300_000; i++) {
      let p: Buffer;
      if (i % 3 === 0) p = Buffer.from(Array.from({ length: rnd(80) }, () => rnd(256)));
      else {
        p = Buffer.from(seedPackets[i % 2]!);
        for (let k = 0; k < 1 + rnd(4); k++) p[rnd(p.length)] = rnd(256);
        if (rnd(4) === 0) p = p.subarray(0, rnd(p.length));
      }
      const r = parseQuery(p);
      if (r.ok) cache.get(r.q.name, r.q.qtype, r.q.edns !== null);
      if (i % 6 === 0) packets.push(p);
    }
    // Then over the network, to both nodes' UDP and to a TCP connection.
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.8.8.8', r));
    for (const [i, p] of packets.entries()) {
      sock.send(p, i % 2 === 0 ? a.dnsPort : b.dnsPort, i % 2 === 0 ? a.host : b.host);
      if (i % 200 === 199) await new Promise((r) => setTimeout(r, 5));
    }
    sock.close();
    const tcp = connect(a.dnsPort, a.host);
    tcp.on('error', () => undefined);
    await new Promise((r) => tcp.once('connect', r));
    for (const p of packets.slice(0, 2000)) {
      const f = Buffer.alloc(2 + p.length);
      f.writeUInt16BE(p.length, 0);
      p.copy(f, 2);
      tcp.write(f);
    }
    tcp.destroy();
    for (const n of [a, b]) {
      const r = await dig(n, 'stream.radio.test', 'A');
      assert.equal(r.status, 'NOERROR');
      assert.equal(r.answer.length, 2);
      assert.equal((await n.health()).status, 200);
      assert.doesNotMatch(n.proc.output(), /worker \d+ (failed|exited)/);
    }
  });

  it('limits by /24 and /56 prefixes', () => {
    assert.equal(prefixOf('192.0.2.77'), '192.0.2');
    assert.equal(prefixOf('::ffff:192.0.2.77'), '192.0.2');
    assert.equal(prefixOf('2001:db8:1:2:3::9'), '20010db8000100');
    assert.equal(prefixOf('2001:db8:1:ff::1'), '20010db8000100', 'same /56');
    assert.equal(prefixOf('2001:db8:1:2ff::1'), '20010db8000102', 'another /56');
    assert.equal(prefixOf('::1'), '00000000000000');
  });
});
