/**
 * A hub through a failover, as its listeners see it: real HTTP servers on
 * 127.0.0.1 port 0 play the local Icecast and another node's, answering 404
 * while they do not have the mount (as Icecast does while a new master is
 * elected and restarts it) and an Ogg stream with its header pages when they do.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../../../harness/net.ts';
import { Hub } from '../../../src/proxy/hub.ts';
import type { Client } from '../../../src/proxy/hub-client.ts';
import type { Upstream } from '../../../src/proxy/upstream-link.ts';
import { OggSplitter } from '../../../src/proxy/ogg.ts';
import type { Sink } from '../../../src/proxy/sink.ts';
import { oggPage } from '../../../harness/ogg-pages.ts';


/** An Icecast stand-in: each stream starts with its header pages, then an audio page every 40 ms. */
class FakeIcecast {
  readonly name: string;
  readonly serial: number;
  has = true;
  /** Answers 200 and never sends a byte, like an Icecast whose relay is stuck holding the mount. */
  silent = false;
  notFound = 0;
  readonly streams = new Set<ServerResponse>();
  readonly #server: Server;
  readonly #timer: NodeJS.Timeout;
  #granule = 0n;

  constructor(name: string, serial: number) {
    this.name = name;
    this.serial = serial;
    this.#server = createServer((_req, res) => {
      if (!this.has) {
        this.notFound++;
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/ogg' });
      if (this.silent) return void res.flushHeaders();
      res.write(oggPage({ bos: true, granule: 0n, serial, fill: serial, body: 30 }));
      res.write(oggPage({ granule: 0n, serial, fill: serial, body: 300 }));
      this.streams.add(res);
      res.on('close', () => this.streams.delete(res));
    });
    this.#timer = setInterval(() => {
      this.#granule += 960n;
      const page = oggPage({ granule: this.#granule, serial, fill: serial, body: 400 });
      for (const res of this.streams) res.write(page);
    }, 40);
  }

  async start(): Promise<Upstream> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    return { name: this.name, host: '127.0.0.1', port: (this.#server.address() as AddressInfo).port };
  }

  /** The mount goes away (the server restarts without it): streams end, requests get 404. */
  lose(): void {
    this.has = false;
    for (const res of this.streams) res.destroy();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#server.closeAllConnections();
    this.#server.close();
  }
}

/** A listener: what it received, and whether its connection was closed. */
class Ear implements Client {
  icy = false;
  readonly got: Buffer[] = [];
  closedAt = 0;
  sink: Sink | null = null;

  begin(): Sink {
    const sink: Sink & { closed: boolean } = {
      bytes: 0,
      onDrain: null,
      onClose: null,
      closed: false,
      write: (b: Buffer): boolean => {
        this.got.push(Buffer.from(b));
        return true;
      },
      close: (): void => {
        if (sink.closed) return;
        sink.closed = true;
        this.closedAt = Date.now();
        sink.onClose?.();
      },
      ownableFd: () => -1,
      handedOver: () => assert.fail('not a socket'),
    };
    this.sink = sink;
    return sink;
  }

  fail(status: number, text: string): void {
    assert.fail(`the listener was refused: ${status} ${text}`);
  }

  get bytes(): number {
    return this.got.reduce((n, b) => n + b.length, 0);
  }

  pages(): { pages: ReturnType<OggSplitter['push']>; skipped: number } {
    const s = new OggSplitter();
    const pages = s.push(Buffer.concat(this.got));
    return { pages, skipped: s.skipped };
  }
}

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

async function icecast(name: string, serial: number): Promise<[FakeIcecast, Upstream]> {
  const ice = new FakeIcecast(name, serial);
  cleanup.push(() => ice.stop());
  return [ice, await ice.start()];
}

function hubOf(o: Omit<ConstructorParameters<typeof Hub>[0], 'path' | 'burstBytes' | 'queueBytes' | 'onClosed'>): Hub {
  const hub = new Hub({ path: '/live.ogg', burstBytes: 16_384, queueBytes: 1 << 20, onClosed: () => undefined, ...o });
  cleanup.push(() => hub.close('test'));
  return hub;
}

describe('hub: listeners through a failover', () => {
  it('keeps its listeners while the upstream answers 404 and the mount exists, and lets them go when the mount is deleted', async () => {
    const [local, up] = await icecast('local', 1);
    let exists = true;
    const hub = hubOf({ targets: () => [up], exists: () => exists, giveUpMs: 60_000 });
    const ear = new Ear();
    hub.add(ear);
    await waitFor(() => ear.bytes > 2000, 5000, 'the stream');

    local.lose();
    await sleep(4000);
    assert.equal(ear.closedAt, 0, 'the listener is still connected after 4 s of 404s');
    assert.equal(hub.closed, false);
    assert.ok(local.notFound >= 4 && local.notFound <= 20, `retried with a bounded backoff (${local.notFound} tries in 4 s)`);
    const before = ear.bytes;
    await sleep(300);
    assert.equal(ear.bytes, before, 'nothing is sent while there is no stream');

    local.has = true;
    const back = Date.now();
    await waitFor(() => ear.pages().pages.filter((p) => p.bos).length === 2, 3000, 'the stream again');
    assert.ok(Date.now() - back < 1500, `the stream came back ${Date.now() - back} ms after the upstream had the mount`);
    await waitFor(() => ear.bytes > before + 2000, 3000, 'audio after the gap');
    assert.equal(ear.pages().skipped, 0, 'whole pages only');

    local.lose();
    exists = false;
    await waitFor(() => ear.closedAt > 0, 3000, 'the listener to be let go once the mount is deleted');
    assert.equal(hub.closed, true);
  });

  it('lets listeners go after giveUpMs without any upstream, though the mount exists', async () => {
    const [local, up] = await icecast('local', 1);
    const hub = hubOf({ targets: () => [up], giveUpMs: 1500 });
    const ear = new Ear();
    hub.add(ear);
    await waitFor(() => ear.bytes > 0, 5000, 'the stream');
    local.lose();
    const lost = Date.now();
    await waitFor(() => ear.closedAt > 0, 5000, 'the listener to be let go');
    const held = ear.closedAt - lost;
    assert.ok(held >= 1400 && held < 3000, `held ${held} ms`);
    assert.equal(hub.closed, true);
  });

  it('leaves an upstream that answers 200 but sends nothing for the next one', async () => {
    const [stuck, stuckUp] = await icecast('stuck', 1);
    const [, otherUp] = await icecast('other', 2);
    stuck.silent = true;
    const hub = hubOf({ targets: () => [stuckUp, otherUp], pendingMs: 20_000 });
    const ear = new Ear();
    hub.add(ear);
    await waitFor(() => ear.bytes > 3000, 15_000, 'the stream from the other upstream');
    assert.equal(hub.upstreamName, 'other');
    assert.ok(ear.pages().pages.every((p) => p.serial === 2));
  });

  it('moves back to the local Icecast once it has the mount, without closing listeners', async () => {
    const [local, localUp] = await icecast('local', 1);
    const [other, otherUp] = await icecast('other', 2);
    local.has = false;
    let localReady = false;
    const hub = hubOf({
      targets: () => (localReady ? [localUp, otherUp] : [otherUp, localUp]),
      home: () => (localReady ? localUp : null),
      homeCheckMs: 300,
    });
    const ear = new Ear();
    hub.add(ear);
    await waitFor(() => ear.bytes > 3000, 5000, 'the stream from the other node');
    assert.equal(hub.upstreamName, 'other');
    await sleep(700);
    assert.equal(local.notFound, 0, 'no look at the local Icecast while the snapshot does not have it there');

    local.has = true;
    localReady = true;
    const ready = Date.now();
    await waitFor(() => ear.pages().pages.some((p) => p.serial === 1 && !p.bos && p.granule > 0n), 3000, 'audio from the local Icecast');
    assert.ok(Date.now() - ready < 1500, `moved within ${Date.now() - ready} ms`);
    assert.equal(hub.upstreamName, 'local');
    assert.equal(hub.switches, 1);
    assert.equal(hub.reconnects, 0);
    await waitFor(() => other.streams.size === 0, 2000, 'the other node\'s stream to be dropped');

    const at = ear.bytes;
    await waitFor(() => ear.bytes > at + 4000, 3000, 'more audio from the local Icecast');
    assert.equal(ear.closedAt, 0, 'the listener kept its connection');
    const { pages, skipped } = ear.pages();
    assert.equal(skipped, 0, 'whole pages only: the switch is at a page boundary');
    const serials = pages.map((p) => p.serial);
    const firstLocal = serials.indexOf(1);
    assert.ok(firstLocal > 0 && serials.slice(0, firstLocal).every((s) => s === 2) && serials.slice(firstLocal).every((s) => s === 1), 'the other\'s pages, then the local\'s, never mixed');
    assert.equal(pages[0]!.bos, true);
    assert.equal(pages[firstLocal]!.bos, true, 'the local stream starts with its own header pages');
    assert.equal(pages.filter((p) => p.bos).length, 2);

    // Back home, it stays: no further switches.
    await sleep(700);
    assert.equal(hub.switches, 1);
  });
});
