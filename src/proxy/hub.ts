/**
 * A hub fans one upstream connection (the local Icecast, or another node's
 * while it is down) out to every listener of one mount in this worker.
 *
 * The upstream's bytes go into a ring of chunks with absolute byte offsets
 * (whole pages for Ogg). Each listener has a position in that stream:
 *
 *   ring:   [ c0 | c1 | c2 | c3 | c4 ]      offsets start .. end
 *                       ^ slow listener        ^ caught-up listeners
 *
 * Caught-up listeners get each new chunk as it arrives. A listener whose
 * connection backs up is left at its position and resumes from there when
 * it drains; if the ring moves past its position (it lags by more than the
 * queue size) it is dropped, so a slow listener never slows the others and
 * memory per listener stays at most one chunk. A new listener starts with
 * the codec headers (Ogg) and a burst of recent audio from a page or frame
 * boundary, as Icecast does.
 *
 * Listeners outlive a failover: while the mount exists the hub keeps them
 * and retries its upstreams (a new master's Icecast may take a while to
 * have the mount again), and once the preferred upstream (the local
 * Icecast) has the mount again it moves to it without dropping anyone.
 */
import { get, type ClientRequest, type IncomingMessage } from 'node:http';
import { sameHostPort } from '../core/host-port.ts';
import { IcyInserter, IcyStripper } from './icy.ts';
import { OggHeaderTracker, OggSplitter } from './ogg.ts';
import type { Sink } from './sink.ts';
import { REPLIES } from './answers.ts';

export interface Upstream {
  name: string;
  host: string;
  port: number;
}

export interface StreamHead {
  contentType: string;
  /** icy-* and ice-* headers passed on from the upstream. */
  headers: [string, string][];
  /** Whether the stream can carry ICY metadata (not Ogg). */
  icyCapable: boolean;
}

/** A listener waiting for, or receiving, the stream. */
export interface Client {
  /** Wants ICY metadata blocks (Icy-MetaData: 1). */
  icy: boolean;
  /** Writes the response head; returns the sink, or null if the client left meanwhile. */
  begin(head: StreamHead): Sink | null;
  /** The hub could not get the stream: answer with an error. */
  fail(status: number, text: string): void;
  /** Who is listening, for `radioctl listeners`. */
  who?: Session;
}

/** A listener as `radioctl listeners` shows it. */
export interface Session {
  address: string;
  userAgent: string;
  /** When it connected (Unix ms). */
  since: number;
}

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

interface Chunk {
  off: number;
  buf: Buffer;
  /** Starts on a page (Ogg) boundary: a new listener may start here. */
  boundary: boolean;
}

interface Listener {
  sink: Sink;
  who: Session | null;
  /** Absolute offset of the next byte this listener needs. */
  pos: number;
  blocked: boolean;
  icy: IcyInserter | null;
}

/**
 * The wait before the hub's next attempt at an upstream: none within a
 * round of the `targets` places, then 100 ms after the first round and
 * 250 ms after each later one.
 */
export function retryDelay(attempt: number, targets: number): number {
  if (targets > 1 && attempt % targets !== 0) return 0;
  const round = Math.floor(attempt / Math.max(1, targets));
  return [0, 100, 250][Math.min(round, 2)]!;
}

const MP3_SYNC = (b: Buffer, i: number): boolean => b[i] === 0xff && (b[i + 1]! & 0xe0) === 0xe0;

/** Non-Ogg streams are written to listeners in pieces of at least this many bytes... */
const COALESCE_BYTES = 4096;
/** ...or after this long, whichever comes first (at 128 kbit/s: every 250 ms, 4 KiB). */
const COALESCE_MS = 250;

export class Hub {
  readonly path: string;
  readonly #o: Required<HubOptions>;
  readonly #listeners = new Set<Listener>();
  readonly #pending = new Set<Client>();
  #ring: Chunk[] = [];
  #ringBytes = 0;
  #end = 0;
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
  #metadata = '';
  #req: ClientRequest | null = null;
  /** The upstream `#req` streams from, once it answered. */
  #current: Upstream | null = null;
  /** A connection to the home upstream, made before the current one is dropped. */
  #probe: ClientRequest | null = null;
  #homeTimer: NodeJS.Timeout | null = null;
  #attempt = 0;
  #retry: NodeJS.Timeout | null = null;
  #giveUp: NodeJS.Timeout | null = null;
  #linger: NodeJS.Timeout | null = null;
  #pendingTimer: NodeJS.Timeout | null = null;
  #lastDataAt = 0;
  #closed = false;
  /** Non-Ogg bytes not yet appended (see COALESCE_BYTES). */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #heldTimer: NodeJS.Timeout | null = null;
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
    this.#connect();
    this.#homeTimer = setInterval(() => this.#checkHome(), this.#o.homeCheckMs);
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  /** Who is listening now. */
  sessions(): Session[] {
    const out: Session[] = [];
    for (const l of this.#listeners) if (l.who) out.push(l.who);
    return out;
  }

  get closed(): boolean {
    return this.#closed;
  }

  add(client: Client): void {
    if (this.#linger) {
      clearTimeout(this.#linger);
      this.#linger = null;
    }
    if (this.#head && this.#end > 0) this.#start(client);
    else {
      this.#pending.add(client);
      // A new listener does not wait long for a stream that is not there.
      this.#pendingTimer ??= setTimeout(() => {
        this.#pendingTimer = null;
        for (const c of this.#pending) c.fail(REPLIES.streamUnavailable.status, REPLIES.streamUnavailable.text);
        this.#pending.clear();
        if (this.#listeners.size === 0) this.close('nobody to serve');
      }, this.#o.pendingMs);
    }
  }

  #start(client: Client): void {
    const sink = client.begin(this.#head!);
    if (!sink) return;
    const l: Listener = { sink, who: client.who ?? null, pos: this.#burstStart(), blocked: false, icy: client.icy && this.#head!.icyCapable ? new IcyInserter() : null };
    this.#listeners.add(l);
    sink.onClose = () => this.#remove(l);
    sink.onDrain = () => this.#flush(l);
    if (this.#isOgg) {
      for (const h of this.#headers.headers) {
        if (!this.#send(l, h)) break;
      }
    }
    this.#flush(l);
  }

  /** Where a new listener starts: `burstBytes` back, on a page or frame boundary. */
  #burstStart(): number {
    if (this.#isOgg && this.#chainAudioStart < 0) return this.#end;
    const want = Math.max(this.#end - this.#o.burstBytes, this.#isOgg ? this.#chainAudioStart : 0);
    for (const c of this.#ring) {
      if (c.off + c.buf.length <= want) continue;
      if (this.#isOgg) {
        if (c.boundary && c.off >= want) return c.off;
        continue;
      }
      for (let i = Math.max(0, want - c.off); i < c.buf.length - 1; i++) if (MP3_SYNC(c.buf, i)) return c.off + i;
    }
    return this.#end;
  }

  #send(l: Listener, buf: Buffer): boolean {
    const out = l.icy ? l.icy.transform(buf, this.#metadata) : buf;
    this.#o.onSent(out.length);
    return l.sink.write(out);
  }

  /** Writes what `l` is missing from the ring, until it is caught up or backs up. */
  #flush(l: Listener): void {
    if (l.sink.closed) return;
    const first = this.#ring[0];
    if (first && l.pos < first.off) {
      // It lagged by more than the queue: let it go, as Icecast does.
      l.sink.close();
      return;
    }
    let i = this.#indexOf(l.pos);
    while (i >= 0 && i < this.#ring.length) {
      const c = this.#ring[i]!;
      const from = l.pos - c.off;
      l.pos = c.off + c.buf.length;
      if (!this.#send(l, from === 0 ? c.buf : c.buf.subarray(from))) {
        l.blocked = true;
        return;
      }
      i++;
    }
    l.blocked = false;
  }

  #indexOf(pos: number): number {
    const r = this.#ring;
    let lo = 0;
    let hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = r[mid]!;
      if (pos < c.off) hi = mid - 1;
      else if (pos >= c.off + c.buf.length) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  #append(buf: Buffer, boundary: boolean): void {
    const c: Chunk = { off: this.#end, buf, boundary };
    this.#ring.push(c);
    this.#ringBytes += buf.length;
    this.#end += buf.length;
    const cap = Math.max(this.#o.queueBytes, this.#o.burstBytes);
    while (this.#ringBytes - this.#ring[0]!.buf.length >= cap) this.#ringBytes -= this.#ring.shift()!.buf.length;
    for (const l of this.#listeners) {
      if (l.blocked) {
        if (l.pos < this.#ring[0]!.off) l.sink.close();
        continue;
      }
      l.pos = this.#end;
      if (!this.#send(l, buf)) l.blocked = true;
    }
  }

  #onData(chunk: Buffer): void {
    this.#lastDataAt = Date.now();
    const audio = this.#icy ? this.#icy.push(chunk) : chunk;
    if (this.#icy) this.#metadata = this.#icy.metadata;
    if (audio.length === 0) return;
    if (!this.#isOgg) {
      this.#hold(audio);
    } else {
      for (const page of this.#ogg.push(audio)) {
        const header = this.#headers.classify(page);
        if (header && this.#headers.chain !== this.#chainSeen) this.#chainAudioStart = -1;
        else if (!header && this.#headers.chain !== this.#chainSeen) {
          this.#chainSeen = this.#headers.chain;
          this.#chainAudioStart = this.#end;
        }
        this.#append(page.data, true);
      }
    }
    if (this.#pending.size > 0 && this.#end > 0) {
      const waiting = [...this.#pending];
      this.#pending.clear();
      if (this.#pendingTimer) clearTimeout(this.#pendingTimer);
      this.#pendingTimer = null;
      for (const c of waiting) this.#start(c);
    }
  }

  #connect(): void {
    this.#retry = null;
    if (this.#closed) return;
    const targets = this.#o.targets();
    if (targets.length === 0) return this.#scheduleRetry();
    const t = targets[this.#attempt % targets.length]!;
    this.#attempt++;
    this.#req = this.#request(t, (req, res) => this.#onUpstream(req, res, t, false));
  }

  /** Asks `t` for the stream; `ok` gets a 200 answer, anything else is dropped. */
  #request(t: Upstream, ok: (req: ClientRequest, res: IncomingMessage) => void): ClientRequest {
    const req = get({
      host: t.host, port: t.port, path: this.path, agent: false, timeout: 5000,
      headers: { 'Icy-MetaData': '1', 'User-Agent': 'radioai-hub' },
    });
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200 || this.#closed) {
        res.resume();
        req.destroy();
        return;
      }
      ok(req, res);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => undefined);
    req.on('close', () => {
      if (this.#probe === req) this.#probe = null;
      if (this.#req !== req) return;
      this.#req = null;
      this.#current = null;
      this.#scheduleRetry();
    });
    return req;
  }

  /**
   * Make before break: while on another upstream, a connection
   * to the home upstream is opened, and only once it answers with the stream
   * is the current one dropped. The switch is at a clean point: listeners
   * have only whole Ogg pages (or whole held chunks) of the old stream, and
   * the new one starts with its own header pages, as after a reconnect.
   */
  #checkHome(): void {
    // Without an upstream the retries already try the home one first.
    if (this.#closed || this.#probe || !this.#current || this.#listeners.size === 0) return;
    const home = this.#o.home();
    if (!home || sameHostPort(this.#current, home)) return;
    const probe = this.#request(home, (req, res) => {
      this.#probe = null;
      const old = this.#req;
      this.#req = req;
      if (this.#retry) clearTimeout(this.#retry);
      this.#retry = null;
      old?.destroy();
      this.#onUpstream(req, res, home, this.#current !== null);
    });
    this.#probe = probe;
  }

  #onUpstream(req: ClientRequest, res: IncomingMessage, t: Upstream, switched: boolean): void {
    const type = String(res.headers['content-type'] ?? 'application/octet-stream');
    const headers: [string, string][] = [];
    for (const [k, v] of Object.entries(res.headers)) {
      if ((k.startsWith('icy-') || k.startsWith('ice-')) && k !== 'icy-metaint' && typeof v === 'string') headers.push([k, v]);
    }
    // Bytes held from the previous upstream belong before the new one's.
    this.#release();
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
    this.#current = t;
    if (this.#giveUp) {
      clearTimeout(this.#giveUp);
      this.#giveUp = null;
    }
    // A dropped upstream's last buffered bytes are not this stream's.
    res.on('data', (d: Buffer) => {
      if (this.#req !== req) return;
      // Found once it sends, not when it answers 200: an Icecast whose relay is stuck holds the
      // mount without a byte, and after its idle timeout the next try must go to another target.
      this.#attempt = 0;
      this.#onData(d);
    });
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retry) return;
    // A deleted mount is not coming back: its listeners are let go at once.
    if (!this.#o.exists()) return this.close('the mount is gone');
    // Every target of a round is asked at once after the other (an attempt that finds nothing is one
    // small request and a 404, or a refused connection); the rounds are short and bounded, so that
    // the stream is back within a quarter of a second of any upstream having it again.
    const delay = retryDelay(this.#attempt, this.#o.targets().length);
    this.#retry = setTimeout(() => this.#connect(), delay);
    this.#giveUp ??= setTimeout(() => this.close('the stream is gone'), this.#o.giveUpMs);
  }

  #remove(l: Listener): void {
    this.#listeners.delete(l);
    if (this.#listeners.size === 0 && this.#pending.size === 0 && !this.#closed) {
      this.#linger = setTimeout(() => this.close('no listeners'), this.#o.lingerMs);
    }
  }

  /**
   * MP3, AAC and other frame streams arrive a frame at a time (about 400
   * bytes, 38 a second at 128 kbit/s); writing each to every listener costs
   * a system call per frame per listener. Held until COALESCE_BYTES or
   * COALESCE_MS, they go out as a few writes a second, as Ogg pages do.
   */
  #hold(audio: Buffer): void {
    this.#held.push(audio);
    this.#heldBytes += audio.length;
    // The first bytes after a (re)connect go out at once: waiting listeners need a start.
    if (this.#heldBytes >= COALESCE_BYTES || this.#end === 0) this.#release();
    else this.#heldTimer ??= setTimeout(() => this.#release(), COALESCE_MS);
  }

  #release(): void {
    if (this.#heldTimer) clearTimeout(this.#heldTimer);
    this.#heldTimer = null;
    if (this.#heldBytes === 0 || this.#closed) return;
    const buf = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held, this.#heldBytes);
    this.#held = [];
    this.#heldBytes = 0;
    this.#append(buf, false);
  }

  close(_why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heldTimer) clearTimeout(this.#heldTimer);
    for (const t of [this.#retry, this.#giveUp, this.#linger, this.#pendingTimer, this.#homeTimer]) if (t) clearTimeout(t);
    this.#req?.destroy();
    this.#req = null;
    this.#probe?.destroy();
    this.#probe = null;
    for (const c of this.#pending) c.fail(REPLIES.streamUnavailable.status, REPLIES.streamUnavailable.text);
    this.#pending.clear();
    for (const l of this.#listeners) l.sink.close();
    this.#listeners.clear();
    this.#ring = [];
    this.#o.onClosed();
  }
}
