/**
 * A hub's connection to where its stream comes from: the local Icecast, or
 * another node's while it is down. It tries the targets in turn with short
 * bounded rounds, gives up only after a long silence or when the mount is
 * gone, and, while on another upstream, moves back home make-before-break:
 * a connection to the home upstream is opened, and only once it answers
 * with the stream is the current one dropped.
 */
import { get, type ClientRequest, type IncomingMessage } from 'node:http';
import { sameHostPort } from '../core/host-port.ts';

export interface Upstream {
  name: string;
  host: string;
  port: number;
}

export interface UpstreamLinkOptions {
  path: string;
  /** Where to get the stream, best first; asked again on every (re)connect. */
  targets: () => Upstream[];
  /** Whether the mount still exists. */
  exists: () => boolean;
  /** The upstream to move back to once it has the stream (the local Icecast), or null. */
  home: () => Upstream | null;
  /** Whether anyone listens: an idle hub does not move home. */
  busy: () => boolean;
  homeCheckMs: number;
  /** How long to try without any upstream before giving up. */
  giveUpMs: number;
  /** A new upstream answered with the stream; `switched` when it replaced a working one. */
  onStream: (res: IncomingMessage, t: Upstream, switched: boolean) => void;
  onData: (chunk: Buffer) => void;
  /** The stream is gone for good. */
  onGone: (why: string) => void;
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

export class UpstreamLink {
  readonly #o: UpstreamLinkOptions;
  #req: ClientRequest | null = null;
  /** The upstream `#req` streams from, once it answered. */
  #current: Upstream | null = null;
  /** A connection to the home upstream, made before the current one is dropped. */
  #probe: ClientRequest | null = null;
  #homeTimer: NodeJS.Timeout | null = null;
  #attempt = 0;
  #retry: NodeJS.Timeout | null = null;
  #giveUp: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(o: UpstreamLinkOptions) {
    this.#o = o;
  }

  start(): void {
    this.#connect();
    // A mount already gone closes the link at once, before there is a timer to clear.
    if (this.#closed) return;
    this.#homeTimer = setInterval(() => this.#checkHome(), this.#o.homeCheckMs);
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
      host: t.host, port: t.port, path: this.#o.path, agent: false, timeout: 5000,
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
   * The switch home is at a clean point: listeners have only whole Ogg
   * pages (or whole held chunks) of the old stream, and the new one starts
   * with its own header pages, as after a reconnect.
   */
  #checkHome(): void {
    // Without an upstream the retries already try the home one first.
    if (this.#closed || this.#probe || !this.#current || !this.#o.busy()) return;
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
    this.#o.onStream(res, t, switched);
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
      this.#o.onData(d);
    });
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retry) return;
    // A deleted mount is not coming back: its listeners are let go at once.
    if (!this.#o.exists()) return this.#o.onGone('the mount is gone');
    // Every target of a round is asked at once after the other (an attempt that finds nothing is one
    // small request and a 404, or a refused connection); the rounds are short and bounded, so that
    // the stream is back within a quarter of a second of any upstream having it again.
    const delay = retryDelay(this.#attempt, this.#o.targets().length);
    this.#retry = setTimeout(() => this.#connect(), delay);
    this.#giveUp ??= setTimeout(() => this.#o.onGone('the stream is gone'), this.#o.giveUpMs);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of [this.#retry, this.#giveUp, this.#homeTimer]) if (t) clearTimeout(t);
    this.#req?.destroy();
    this.#req = null;
    this.#probe?.destroy();
    this.#probe = null;
  }
}
