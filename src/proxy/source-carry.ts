/**
 * Carries one admitted source to the master's Icecast, and keeps carrying
 * it when that Icecast goes away (the master died, or its Icecast
 * restarted): the source program's connection stays open, what it sends
 * meanwhile is kept in a bounded buffer (the oldest goes first), and as
 * soon as the snapshot names a master whose Icecast takes the source again,
 * the carrier sends that Icecast what a new source connection needs first —
 * the request head and, for Ogg, the stream's codec header pages — then the
 * buffered audio, and goes on. The source program never notices.
 *
 *   client --head, body--> [decode chunked] --> [Ogg pages] --> upstream
 *                                                   |   ^
 *                               upstream gone:  buffer --'  new upstream
 *
 * The first upstream's answer (200, or 100 then 200) goes to the client;
 * later ones are read here, and a refusal just means "try again shortly".
 * A first upstream that closes without answering gets the program a 503,
 * as before there was a carrier: nothing was taken, so nothing is carried.
 * The carrier follows the master: when the snapshot names another master
 * than the one it carries to (this one stepped down, or was replaced while
 * its Icecast lives on), it moves the source there.
 *
 * Once an upstream has taken the source and keeps up, the bytes of a plain
 * (not chunked, not Ogg) upload are lent to native code, which carries them
 * without waking JavaScript (source-relay.ts); anything out of the ordinary
 * gives them back, with what was read and not yet written, to the paths
 * above.
 */
import type { Socket } from 'node:net';
import { sameHostPort } from '../core/host-port.ts';
import { plainFd } from '../core/native-addon.ts';
import { ChunkedDecoder } from './chunked.ts';
import { isChunked, type RequestHead } from './http-head.ts';
import { OggHeaderTracker, OggSplitter } from './ogg.ts';
import { connectTo, type Target } from './source-forward.ts';
import { RELAY_STOPPED, SourceRelay, sourceRelayUnavailable, type RelayStop } from './source-relay.ts';

export const CARRY_LIMITS = {
  /** Audio kept while no upstream takes it: about 12 s of a 128 kbit/s stream, 5 s at 320. */
  bufferBytes: 192 * 1024,
  /** Between attempts to reach an upstream. */
  retryMs: 250,
  /** A source with no upstream for this long is let go (its program can reconnect elsewhere). */
  waitMs: 60_000,
  /** An upstream must answer a source's head within this (the first one too: a silent one would hold the program for ever). */
  answerMs: 3000,
  /** How often the carrier looks whether the master has changed under it. */
  followMs: 1000,
  /** How long a program is held through passing refusals before it gets the last one (holdRefusal). */
  holdMs: 8000,
  /** An ended upload's last bytes, queued for the upstream, reach it within this or are let go. */
  finishMs: 3000,
} as const;

export interface CarryOptions {
  client: Socket;
  head: RequestHead;
  /** Body bytes read with the head. */
  rest: Buffer;
  /** The upstream's request head for `target` (login rewritten, framing dropped). */
  upstreamHead: (target: Target, again: boolean) => string;
  /** Where sources go now (the master's Icecast), or null while there is none. */
  findTarget: () => Target | null;
  /** Called when a new upstream took the source after a gap (ms without one). */
  onResumed?: (gapMs: number, target: Target) => void;
  /** The first upstream closed without an answer: tell the program (a 503), which then closes. */
  onUnanswered?: () => void;
  /**
   * Whether a refusal (`status`) from the first upstream is a passing one,
   * to be retried while the program waits, up to `holdMs` from the start:
   * the door says yes to a 401 (Icecast's configuration trails the cluster's)
   * and to a 403 for a mount no node reports live (passingRefusal).
   */
  holdRefusal?: (status: number) => boolean;
  /** Native code took or gave back the source's bytes (source-relay.ts relaysRunning() says how many it has). */
  onRelay?: () => void;
  limits?: Partial<Record<keyof typeof CARRY_LIMITS, number>>;
}

/** Is the source's stream Ogg (its header pages must be sent first to a new upstream)? */
export function isOggSource(head: RequestHead): boolean {
  const type = head.headers.get('content-type') ?? '';
  return /ogg|opus|vorbis|flac/i.test(type) || /\.(ogg|oga|ogv|opus|spx)$/i.test(head.path);
}

/** The status code of a response head, or 0 when it is not one. */
export function statusOf(head: string): number {
  const m = /^(?:HTTP\/1\.[01]|ICE\/1\.0) (\d{3})/.exec(head);
  return m ? Number(m[1]) : 0;
}

/** The first whole response head in `text`: its status and its length, or null while it is not whole. */
function firstHead(text: string): { status: number; length: number } | null {
  const end = text.indexOf('\r\n\r\n');
  return end < 0 ? null : { status: statusOf(text), length: end + 4 };
}

export class SourceCarry {
  readonly #o: CarryOptions;
  readonly #limits: Record<keyof typeof CARRY_LIMITS, number>;
  readonly #ogg: { split: OggSplitter; headers: OggHeaderTracker } | null;
  readonly #chunked: ChunkedDecoder | null;
  #up: Socket | null = null;
  #upTarget: Target | null = null;
  #follow: NodeJS.Timeout | null = null;
  /** The upstream has taken the source (answered 200). */
  #live = false;
  #first = true;
  /** Whether the first upstream took the source (null until it has answered). */
  #accepted: boolean | null = null;
  /** Audio (whole Ogg pages, or raw reads) waiting for an upstream; header pages stay with the tracker. */
  #kept: Buffer[] = [];
  #keptBytes = 0;
  #lostAt = 0;
  #retry: NodeJS.Timeout | null = null;
  #done = false;
  /** The program ended its upload: an upstream that closes now is not lost. */
  #ending = false;
  /** The first upstream refused, and the program is held while another is tried. */
  #heldRefusal = false;
  #holdUntil = 0;
  /** Times a new upstream took the source after the first. */
  resumes = 0;
  /** Whether this upload's bytes may be lent to native code (plain TCP, not chunked, not Ogg, the addon there). */
  #lendable: boolean;
  /** The steady state carried by native code, while it is. */
  #relay: SourceRelay | null = null;
  /** An ended upload's upstream, still taking its last bytes (#finish). */
  #finishing: Socket | null = null;

  constructor(o: CarryOptions) {
    this.#o = o;
    this.#limits = { ...CARRY_LIMITS, ...o.limits };
    this.#ogg = isOggSource(o.head) ? { split: new OggSplitter(), headers: new OggHeaderTracker() } : null;
    this.#chunked = isChunked(o.head) ? new ChunkedDecoder() : null;
    // Decided once: a TLS upload would otherwise ask again with every piece it sends.
    this.#lendable = !this.#ogg && !this.#chunked && plainFd(o.client) >= 0 && sourceRelayUnavailable() === null;
  }

  /** Whether native code carries the source's bytes now. */
  get relayed(): boolean {
    return this.#relay?.running === true;
  }

  /** Starts with an upstream already connected to `target`. */
  start(up: Socket, target: Target): void {
    this.#holdUntil = Date.now() + this.#limits.holdMs;
    const c = this.#o.client;
    c.on('data', (b: Buffer) => this.#body(b));
    c.on('end', () => this.#clientEnded());
    c.on('close', () => this.#finish());
    this.#attach(up, target);
    if (this.#o.rest.length > 0) this.#body(this.#o.rest);
    c.resume();
    this.#follow = setInterval(() => this.#followMaster(), this.#limits.followMs);
    this.#follow.unref();
  }

  /** A source carried to a node that is no longer the master moves to the one that is. */
  #followMaster(): void {
    const up = this.#up;
    const at = this.#upTarget;
    if (!this.#live || !up || !at || this.#accepted !== true) return;
    const now = this.#o.findTarget();
    if (now && !sameHostPort(now, at)) up.destroy();
  }

  /** Ends both sides. */
  close(): void {
    // Dropped, not ended: an upload still being finished (#finish) goes too.
    this.#up?.destroy();
    this.#finishing?.destroy();
    this.#o.client.destroy();
    this.#finish();
  }

  #attach(up: Socket, target: Target): void {
    this.#up = up;
    this.#upTarget = target;
    up.on('error', () => undefined);
    up.on('drain', () => this.#o.client.resume());
    up.once('close', () => this.#upstreamGone(up));
    up.write(this.#o.upstreamHead(target, !this.#first));
    if (this.#first) {
      // The first upstream answers the client itself (100 Continue, 200, or a refusal).
      this.#first = false;
      this.#live = true;
      let answer = '';
      const answered = this.#answerDeadline(up);
      up.on('data', (d: Buffer) => {
        if (this.#accepted !== null) return void this.#o.client.write(d);
        answer += d.toString('latin1');
        for (let h = firstHead(answer); h !== null; h = firstHead(answer)) {
          const { status } = h;
          if (status === 100) {
            this.#o.client.write(Buffer.from(answer.slice(0, h.length), 'latin1'));
            answer = answer.slice(h.length);
            continue;
          }
          answered();
          // A passing refusal (Icecast's configuration a reload behind the cluster's, or a new master's
          // Icecast still holding the mount for a relay of the old one): the program is held, not refused.
          if (status !== 200 && Date.now() < this.#holdUntil && this.#o.holdRefusal?.(status) === true) {
            this.#heldRefusal = true;
            return void up.destroy();
          }
          this.#accepted = status === 200;
          this.#kept = [];
          this.#keptBytes = 0;
          this.#o.client.write(Buffer.from(answer, 'latin1'));
          return;
        }
        if (answer.length > 8192) {
          this.#accepted = false;
          this.#o.client.write(Buffer.from(answer, 'latin1'));
        }
      });
      return;
    }
    let answer = '';
    const answered = this.#answerDeadline(up);
    const onData = (d: Buffer): void => {
      answer += d.toString('latin1');
      if (answer.length > 8192) return void up.destroy();
      for (let h = firstHead(answer); h !== null; h = firstHead(answer)) {
        const { status } = h;
        if (status === 100) {
          answer = answer.slice(h.length);
          continue;
        }
        answered();
        up.off('data', onData);
        if (status !== 200) return void up.destroy();
        // Anything more an Icecast says to a source is not for it.
        up.on('data', () => undefined);
        // A program held through a refusal hears this upstream's answer as its own.
        if (this.#accepted === null) {
          this.#accepted = true;
          this.#o.client.write(Buffer.from(answer.slice(0, h.length), 'latin1'));
        }
        return this.#resumed(up, this.#upTarget!);
      }
    };
    up.on('data', onData);
  }

  /** `up` is closed unless it answers (the returned function says so) within answerMs. */
  #answerDeadline(up: Socket): () => void {
    const timer = setTimeout(() => up.destroy(), this.#limits.answerMs);
    const answered = (): void => clearTimeout(timer);
    up.once('close', answered);
    return answered;
  }

  /** A new upstream took the source: codec headers, then what was kept, then live. */
  #resumed(up: Socket, target: Target): void {
    this.resumes++;
    const gap = Date.now() - this.#lostAt;
    if (this.#ogg) for (const h of this.#ogg.headers.headers) up.write(h);
    for (const k of this.#kept) up.write(k);
    this.#kept = [];
    this.#keptBytes = 0;
    this.#live = true;
    this.#o.onResumed?.(gap, target);
  }

  #body(b: Buffer): void {
    if (this.#done) return;
    let parts: Buffer[] = [b];
    if (this.#chunked) {
      parts = this.#chunked.push(b);
      if (this.#chunked.error !== null) return this.close();
    }
    for (const p of parts) {
      if (!this.#ogg) this.#send(p, false);
      else for (const page of this.#ogg.split.push(p)) this.#send(page.data, this.#ogg.headers.classify(page));
    }
    // The last chunk ends the upload, as the end of the connection would.
    if (this.#chunked?.done) this.#clientEnded();
  }

  #send(data: Buffer, header: boolean): void {
    const up = this.#up;
    if (this.#live && up && !up.destroyed) {
      if (!up.write(data)) this.#o.client.pause();
      else if (this.#accepted === true && this.#lendable) this.#lend(up);
      // Until the first upstream has answered, a copy is kept: a refusal held (holdRefusal) loses nothing.
      if (this.#accepted !== null || header) return;
    } else if (header) return; // Kept apart by the tracker, sent first to the next upstream.
    this.#keep(data);
  }

  /** The upstream took the source and has taken everything so far: native code carries on until something happens. */
  #lend(up: Socket): void {
    if (this.#relay !== null || this.#ending || this.#done) return;
    this.#relay = SourceRelay.start(this.#o.client, up, (left, why) => this.#relayStopped(up, left, why));
    if (this.#relay) this.#o.onRelay?.();
  }

  /** Native code stopped by itself; the program's socket reads again. */
  #relayStopped(up: Socket, left: Buffer, why: RelayStop): void {
    this.#relay = null;
    this.#o.onRelay?.();
    if (this.#done) return;
    if (why === RELAY_STOPPED.upstream || up !== this.#up || up.destroyed) {
      // What the failed upstream did not take waits for the next one, before all that follows it.
      if (left.length > 0) this.#keep(left);
      up.destroy();
      return;
    }
    // The program ended or reset (or the relay failed): its last bytes still go up, and node:net reads on. Nothing more is lent.
    this.#lendable = false;
    if (left.length > 0) this.#send(left, false);
  }

  /** Takes the bytes back from native code: what it read and had not yet written. */
  #reclaim(): Buffer | null {
    const r = this.#relay;
    this.#relay = null;
    if (!r?.running) return null;
    const left = r.take();
    this.#o.onRelay?.();
    return left;
  }

  #keep(data: Buffer): void {
    this.#kept.push(data);
    this.#keptBytes += data.length;
    while (this.#keptBytes > this.#limits.bufferBytes && this.#kept.length > 1) {
      this.#keptBytes -= this.#kept.shift()!.length;
    }
    // One read larger than the bound: its newest part (a byte stream such as MP3 resynchronises; an Ogg page is kept whole).
    if (this.#keptBytes > this.#limits.bufferBytes && !this.#ogg) {
      this.#kept[0] = this.#kept[0]!.subarray(this.#kept[0]!.length - this.#limits.bufferBytes);
      this.#keptBytes = this.#kept[0].length;
    }
  }

  #clientEnded(): void {
    if (this.#done) return;
    this.#ending = true;
    // The source program is done: end the upload; the client closes once the upstream has it all.
    const up = this.#up;
    if (this.#live && up && !up.destroyed) {
      up.end();
      up.once('close', () => this.close());
    } else this.close();
  }

  #upstreamGone(up: Socket): void {
    if (this.#up !== up || this.#done) return;
    const left = this.#reclaim();
    if (this.#ending) return this.close();
    // A refusal (wrong password, mount in use) went to the client as it was: nothing to carry on.
    if (this.#accepted === false) return this.close();
    if (this.#heldRefusal) {
      this.#heldRefusal = false;
      this.#up = null;
      this.#live = false;
      this.#lostAt = Date.now();
      return this.#scheduleRetry();
    }
    // Closed before it answered the program: it never took the source. The program hears so and retries as it would have.
    if (this.#accepted === null && this.#lostAt === 0) {
      return this.#unanswered();
    }
    this.#up = null;
    if (this.#live) this.#lostAt = Date.now();
    this.#live = false;
    // What native code read and had not written comes first of what the next upstream gets.
    if (left && left.length > 0) this.#keep(left);
    // Keep reading what the source sends, into the buffer.
    this.#o.client.resume();
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#done || this.#retry) return;
    // Held past its time without an upstream that takes it: the program hears that no master is reachable.
    if (this.#accepted === null && Date.now() >= this.#holdUntil) return this.#unanswered();
    if (Date.now() - this.#lostAt > this.#limits.waitMs) return this.close();
    this.#retry = setTimeout(() => {
      this.#retry = null;
      this.#reconnect();
    }, this.#limits.retryMs);
  }

  #reconnect(): void {
    const target = this.#o.findTarget();
    if (!target) return this.#scheduleRetry();
    connectTo(target).then((up) => {
      if (this.#done) return void up.destroy();
      this.#attach(up, target);
    }, () => this.#scheduleRetry());
  }

  #unanswered(): void {
    this.#done = true;
    this.#clear();
    if (this.#o.onUnanswered) this.#o.onUnanswered();
    else this.#o.client.destroy();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    // The program ended its upload and its connection closed: what Node still holds for the upstream goes before the end.
    const up = this.#up;
    if (this.#ending && up && !up.destroyed && up.writableLength > 0) {
      this.#up = null;
      this.#finishing = up;
      setTimeout(() => up.destroy(), this.#limits.finishMs).unref();
    }
    this.#clear();
  }

  #clear(): void {
    this.#reclaim();
    if (this.#retry) clearTimeout(this.#retry);
    if (this.#follow) clearInterval(this.#follow);
    this.#retry = null;
    this.#follow = null;
    this.#up?.destroy();
    this.#kept = [];
    this.#keptBytes = 0;
  }
}
