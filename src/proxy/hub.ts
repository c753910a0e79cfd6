/**
 * A hub fans one upstream connection (the local Icecast, or another node's
 * while it is down) out to every listener of one mount in this worker.
 *
 * The upstream's bytes are taken apart here (ICY metadata stripped and
 * kept, Ogg split into pages with its codec headers tracked, frames, and
 * Ogg pages in a crowd, held a moment by the coalescer) and handed to the
 * fan-out (fanout.ts), where each listener is a position in a ring of
 * recent chunks. A new listener starts with the codec headers (Ogg) and a
 * burst of recent audio from a page or frame boundary, as Icecast does.
 *
 * Listeners outlive a failover: while the mount exists the hub keeps them
 * and its link (upstream-link.ts) retries the upstreams (a new master's
 * Icecast may take a while to have the mount again), and once the local
 * Icecast has the mount again it moves there without dropping anyone.
 */
import type { IncomingMessage } from 'node:http';
import { IcyStripper } from './icy.ts';
import { OggHeaderTracker, OggSplitter } from './ogg.ts';
import { REPLIES } from './answers.ts';
import type { Client, Session, StreamHead } from './hub-client.ts';
import { Fanout } from './fanout.ts';
import { Coalescer, holdOf } from './coalescer.ts';
import { UpstreamLink, type Upstream } from './upstream-link.ts';

export interface HubOptions {
  path: string;
  burstBytes: number;
  queueBytes: number;
  /** Where to get the stream, best first; asked again on every (re)connect. */
  targets: () => Upstream[];
  /** Called when the hub has closed (no listeners, or the stream is gone for good). */
  onClosed: () => void;
  /** Whether the mount still exists; once it does not, a hub without an upstream lets its listeners go. */
  exists?: () => boolean;
  /** The upstream to move back to once it has the stream (the local Icecast), or null. */
  home?: () => Upstream | null;
  /** How often a hub on another upstream looks whether it can move back home. */
  homeCheckMs?: number;
  /**
   * How long listeners wait without any upstream, though the mount exists,
   * before they are let go.
   */
  giveUpMs?: number;
  /** How long the hub keeps its upstream after the last listener left. */
  lingerMs?: number;
  /** How long a new listener waits for a stream that has not started. */
  pendingMs?: number;
  /** Counts bytes written to listeners. */
  onSent?: (bytes: number) => void;
  /** Reports an upstream reconnect and the gap in the stream it caused. */
  onReconnect?: (gapMs: number) => void;
}

export class Hub {
  readonly path: string;
  readonly #o: Required<HubOptions>;
  readonly #pending = new Set<Client>();
  readonly #fanout: Fanout;
  readonly #coalescer = new Coalescer((buf) => this.#fanout.append(buf, false), () => holdOf(this.#fanout.size));
  /** Ogg audio pages, held only in a crowd; header pages are never held (listeners start after them). */
  readonly #pages = new Coalescer((buf) => this.#fanout.append(buf, true), () => holdOf(this.#fanout.size, true));
  readonly #link: UpstreamLink;
  #head: StreamHead | null = null;
  #isOgg = false;
  #ogg = new OggSplitter();
  #headers = new OggHeaderTracker();
  /**
   * Offset of the first audio page of the current Ogg chain, or -1 while the
   * chain has had only header pages: a listener joining then gets the header
   * pages seen so far and the stream from the next page on, never a header
   * page twice (a repeated BOS page makes browsers refuse the stream).
   */
  #chainAudioStart = -1;
  #chainSeen = 0;
  #icy: IcyStripper | null = null;
  #linger: NodeJS.Timeout | null = null;
  #pendingTimer: NodeJS.Timeout | null = null;
  #lastDataAt = 0;
  #closed = false;
  /** Upstream reconnections after the first, and the last gap in ms. */
  reconnects = 0;
  lastGapMs = 0;
  /** Moves back to the home upstream. */
  switches = 0;
  upstreamName: string | null = null;

  constructor(o: HubOptions) {
    this.path = o.path;
    this.#o = {
      // A master's death takes an election and, when the source's own node died with it, the
      // source program's reconnection (source clients wait seconds to tens of seconds between
      // tries): a minute covers that, while a mount whose source is not coming back does not
      // hold its listeners in silence for good.
      giveUpMs: 60_000, lingerMs: 5_000, pendingMs: 5_000, homeCheckMs: 2_000,
      exists: () => true, home: () => null, onSent: () => undefined, onReconnect: () => undefined, ...o,
    };
    this.#fanout = new Fanout(Math.max(this.#o.queueBytes, this.#o.burstBytes), this.#o.onSent, () => {
      if (this.#pending.size === 0 && !this.#closed) this.#linger = setTimeout(() => this.close('no listeners'), this.#o.lingerMs);
    }, this.#o.burstBytes);
    this.#link = new UpstreamLink({
      path: o.path, targets: this.#o.targets, exists: this.#o.exists, home: this.#o.home,
      busy: () => this.#fanout.size > 0, homeCheckMs: this.#o.homeCheckMs, giveUpMs: this.#o.giveUpMs,
      onStream: (res, t, switched) => this.#onStream(res, t, switched),
      onData: (d) => this.#onData(d),
      onGone: (why) => this.close(why),
    });
    this.#link.start();
  }

  get listeners(): number {
    return this.#fanout.size;
  }

  /** Listeners served by native code (plain TCP), a part of `listeners`. */
  get nativeListeners(): number {
    return this.#fanout.nativeSize;
  }

  /** Who is listening now. */
  sessions(): Session[] {
    return this.#fanout.sessions();
  }

  get closed(): boolean {
    return this.#closed;
  }

  add(client: Client): void {
    if (this.#linger) {
      clearTimeout(this.#linger);
      this.#linger = null;
    }
    if (this.#head && this.#fanout.ring.end > 0) this.#start(client);
    else {
      this.#pending.add(client);
      // A new listener does not wait long for a stream that is not there.
      this.#pendingTimer ??= setTimeout(() => {
        this.#pendingTimer = null;
        for (const c of this.#pending) c.fail(REPLIES.streamUnavailable.status, REPLIES.streamUnavailable.text);
        this.#pending.clear();
        if (this.#fanout.size === 0) this.close('nobody to serve');
      }, this.#o.pendingMs);
    }
  }

  #start(client: Client): void {
    const head = this.#head!;
    const sink = client.begin(head);
    if (!sink) return;
    this.#fanout.add(sink, client.who ?? null, client.icy && head.icyCapable, this.#burstStart(), this.#isOgg ? this.#headers.headers : []);
  }

  /** Where a new listener starts: `burstBytes` back, on a page or frame boundary. */
  #burstStart(): number {
    const ring = this.#fanout.ring;
    if (this.#isOgg && this.#chainAudioStart < 0) return ring.end;
    return ring.startAt(Math.max(ring.end - this.#o.burstBytes, this.#isOgg ? this.#chainAudioStart : 0), this.#isOgg);
  }

  #onData(chunk: Buffer): void {
    this.#lastDataAt = Date.now();
    const audio = this.#icy ? this.#icy.push(chunk) : chunk;
    if (this.#icy) this.#fanout.metadata = this.#icy.metadata;
    if (audio.length === 0) return;
    if (!this.#isOgg) {
      // The hub's first bytes go out at once: waiting listeners need a start.
      this.#coalescer.push(audio, this.#fanout.ring.end === 0);
    } else {
      for (const page of this.#ogg.push(audio)) {
        const header = this.#headers.classify(page);
        if (header && this.#headers.chain !== this.#chainSeen) this.#chainAudioStart = -1;
        else if (!header && this.#headers.chain !== this.#chainSeen) {
          this.#chainSeen = this.#headers.chain;
          this.#pages.release();
          // The next release puts this page here, at the start of its chunk.
          this.#chainAudioStart = this.#fanout.ring.end;
        }
        if (header) {
          this.#pages.release();
          this.#fanout.append(page.data, true);
        } else this.#pages.push(page.data, false);
      }
    }
    if (this.#pending.size > 0 && this.#fanout.ring.end > 0) {
      const waiting = [...this.#pending];
      this.#pending.clear();
      if (this.#pendingTimer) clearTimeout(this.#pendingTimer);
      this.#pendingTimer = null;
      for (const c of waiting) this.#start(c);
    }
  }

  #onStream(res: IncomingMessage, t: Upstream, switched: boolean): void {
    const type = String(res.headers['content-type'] ?? 'application/octet-stream');
    const headers: [string, string][] = [];
    for (const [k, v] of Object.entries(res.headers)) {
      if ((k.startsWith('icy-') || k.startsWith('ice-')) && k !== 'icy-metaint' && typeof v === 'string') headers.push([k, v]);
    }
    // Bytes held from the previous upstream belong before the new one's.
    this.#coalescer.release();
    this.#pages.release();
    const wasStreaming = this.#head !== null;
    this.#isOgg = /ogg|opus|flac/i.test(type);
    this.#head ??= { contentType: type, headers, icyCapable: !this.#isOgg };
    const metaint = Number(res.headers['icy-metaint'] ?? 0);
    this.#icy = metaint > 0 ? new IcyStripper(metaint) : null;
    // A new upstream starts with its own header pages: listeners get a chained Ogg stream.
    this.#ogg = new OggSplitter();
    this.#headers.reset();
    if (switched) this.switches++;
    else if (wasStreaming) {
      this.reconnects++;
      this.lastGapMs = Date.now() - this.#lastDataAt;
      this.#o.onReconnect(this.lastGapMs);
    }
    this.upstreamName = t.name;
  }

  close(_why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#coalescer.stop();
    this.#pages.stop();
    for (const t of [this.#linger, this.#pendingTimer]) if (t) clearTimeout(t);
    this.#link.close();
    for (const c of this.#pending) c.fail(REPLIES.streamUnavailable.status, REPLIES.streamUnavailable.text);
    this.#pending.clear();
    this.#fanout.close();
    this.#o.onClosed();
  }
}
