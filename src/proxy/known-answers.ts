/**
 * Redirects answered without entering JavaScript, through the
 * @radioai/known-answers addon (native/known-answers). A redirect through
 * uWebSockets.js crossed into JavaScript on every request, and that crossing
 * (the handler's call, its request and response objects, a call back into
 * C++ for each header) cost more than the routing decision itself. The
 * decision is made here once per mount and snapshot, as http-front.ts makes
 * it (the same router, the same remembered choices), and the addon answers
 * the requests that follow on kept-alive connections with the same bytes
 * until the snapshot's sequence number moves.
 *
 * The front door offers the addon each connection it would give to uWS;
 * the addon takes those whose first request it can answer. A later request
 * it cannot (a status page, a playlist, a stream, anything unusual) gives
 * the connection back (`handoff`), with the answers the socket had not taken
 * and the bytes read, to the Icecast-compatible door, which serves every
 * request.
 *
 * With the listener log on, the addon keeps a record of each answer (time,
 * peer, target, Referer, User-Agent, X-Forwarded-For), and the lines are
 * made from them here once a second, as many as the log takes.
 *
 * Off without the addon and with RADIOAI_KNOWN_ANSWERS=off.
 */
import { loadAddon, type Loaded } from '../core/native-addon.ts';
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { S, type WorkerStats } from '../ipc/worker-stats.ts';
import { REPLIES, TEXT_PLAIN, replyText, statusText } from './answers.ts';
import type { DoorPort } from './icecast-door.ts';
import type { ListenerLog } from './access-record.ts';
import { guardThreadTeardown } from './conn-peek.ts';

/** [status line and headers up to Date, body, whether it holds until the snapshot changes]. */
export type KnownAnswer = [Buffer, Buffer, boolean];

interface Addon {
  create(
    seq: Int32Array, seqIndex: number, stats: Int32Array, statsIndex: number,
    decide: (head: boolean, target: string) => KnownAnswer | null,
    handoff: (fd: number, unsent: Buffer, unread: Buffer, headAgeMs: number) => boolean,
    closed: () => void,
    logging: boolean,
  ): object;
  take(server: object, fd: number, peeked: Uint8Array, peer: string): boolean;
  drain(server: object): [number, number];
  drainLog(server: object): [Buffer | null, number];
  close(server: object): void;
}

let loaded: Loaded<Addon> | undefined;

function load(): Addon | null {
  return (loaded ??= loadAddon<Addon>('@radioai/known-answers', 'RADIOAI_KNOWN_ANSWERS', 'off')).addon;
}

/** Null when known redirects are answered natively here, else why not. */
export function knownAnswersUnavailable(): string | null {
  return load() ? null : loaded!.why;
}

const REDIRECT_LINE = `HTTP/1.1 ${statusText(REPLIES.redirect.status)}\r\n`;
const CONTENT_TYPE = `${TEXT_PLAIN[0]}: ${TEXT_PLAIN[1]}\r\n`;

/**
 * The answer to a GET or HEAD of `target` when it is a listener's redirect,
 * as http-front.ts would write it; null for anything else (a page, a
 * stream, an error, a title update), which JavaScript answers.
 */
export function redirectAnswer(reader: SnapshotReader, port: DoorPort, head: boolean, target: string): KnownAnswer | null {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  // The router first: it remembers its answers, and rules out pages, playlists and unknown paths
  // without making a page. A mount that is also a page's path is the page's, as through uWS.
  const d = port.router.route(reader.current(), path);
  if (d.kind !== 'redirect' || path === '/admin/metadata' || port.pages.answer(head ? 'HEAD' : 'GET', path, '')) return null;
  // The query goes along, as through uWS; an answer with one is not kept.
  const location = q < 0 ? d.location : `${d.location}${target.slice(q)}`;
  return [
    Buffer.from(`${REDIRECT_LINE}Location: ${location}\r\n${CONTENT_TYPE}`, 'latin1'),
    Buffer.from(replyText('redirect', location)),
    q < 0 && port.router.remembers(path, d),
  ];
}

/** One answered request as the addon recorded it for the listener log. */
export interface KnownRecord {
  /** Unix ms. */
  at: number;
  method: string;
  peer: string;
  target: string;
  referer: string;
  userAgent: string;
  forwarded: string;
}

/**
 * The addon's records: per request seven fields (time as decimal text,
 * method, peer, target, Referer, User-Agent, X-Forwarded-For), each a
 * 16-bit big-endian length and its bytes. A record cut short ends the list.
 */
export function parseKnownRecords(buf: Buffer): KnownRecord[] {
  const out: KnownRecord[] = [];
  const f: string[] = [];
  let off = 0;
  for (;;) {
    f.length = 0;
    for (let i = 0; i < 7; i++) {
      if (off + 2 > buf.length) return out;
      const n = buf.readUInt16BE(off);
      if (off + 2 + n > buf.length) return out;
      f.push(buf.toString('latin1', off + 2, off + 2 + n));
      off += 2 + n;
    }
    out.push({ at: Number(f[0]), method: f[1]!, peer: f[2]!, target: f[3]!, referer: f[4]!, userAgent: f[5]!, forwarded: f[6]! });
  }
}

export interface KnownAnswersOptions {
  reader: SnapshotReader;
  stats: WorkerStats;
  port: DoorPort;
  /** The listener log, when its lines are wanted. */
  log?: ListenerLog;
  /**
   * A connection the addon gives back: its descriptor, answers not yet
   * sent, bytes read and not answered, and how long ago the head those
   * start began (0: none). True once JavaScript owns the descriptor;
   * otherwise the addon closes it and reports it closed.
   */
  handoff: (fd: number, unsent: Buffer, unread: Buffer, headAgeMs: number) => boolean;
  /** A connection the addon held has closed. */
  closed: () => void;
}

/** One port's answerer in this worker. */
export class KnownAnswers {
  readonly #addon: Addon;
  readonly #server: object;
  readonly #log: ListenerLog | undefined;

  /** An answerer, or null when redirects go through uWS here. */
  static create(o: KnownAnswersOptions): KnownAnswers | null {
    const a = load();
    if (!a) return null;
    // conn-peek's teardown hook closes every poll handle left on the loop; registered first, it runs
    // after this addon's own (hooks run last-registered first), which has closed its handles by then.
    guardThreadTeardown();
    return new KnownAnswers(a, o);
  }

  private constructor(a: Addon, o: KnownAnswersOptions) {
    this.#addon = a;
    this.#log = o.log?.enabled ? o.log : undefined;
    const seq = o.reader.seqSlot();
    const redirects = o.stats.slot(S.REDIRECTS);
    this.#server = a.create(
      seq.words, seq.index, redirects.words, redirects.index,
      (head, target) => redirectAnswer(o.reader, o.port, head, target),
      o.handoff, o.closed, this.#log !== undefined,
    );
  }

  /**
   * Offers a connection whose first request `peeked` holds, unread: true
   * when the addon owns `fd` from now on, false when the caller still does.
   */
  take(fd: number, peeked: Uint8Array, peer: string): boolean {
    return this.#addon.take(this.#server, fd, peeked, peer);
  }

  /** Puts the answers recorded since the last call into the listener log, with those the addon had no room for. */
  noteLog(): void {
    const log = this.#log;
    if (!log) return;
    const [buf, dropped] = this.#addon.drainLog(this.#server);
    log.dropped(dropped);
    if (buf) {
      for (const r of parseKnownRecords(buf)) {
        log.note({
          address: log.address(r.peer, r.forwarded || undefined), request: `${r.method} ${r.target} HTTP/1.1`,
          status: REPLIES.redirect.status, bytes: 0, referer: r.referer || undefined, userAgent: r.userAgent || undefined, since: r.at,
        }, r.at);
      }
    }
  }

  /** Redirects answered, and the nanoseconds spent on them, since the last call. */
  drain(): [number, number] {
    return this.#addon.drain(this.#server);
  }

  /** Closes every connection held; none are taken after. */
  close(): void {
    this.#addon.close(this.#server);
  }
}
