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
 * Off without the addon, with RADIOAI_KNOWN_ANSWERS=off, and when the
 * listener log is on (each request is a line of it, written in JavaScript).
 */
import { loadAddon, type Loaded } from '../core/native-addon.ts';
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import { S, type WorkerStats } from '../ipc/worker-stats.ts';
import { REPLIES, TEXT_PLAIN, replyText, statusText } from './answers.ts';
import type { DoorPort } from './icecast-door.ts';
import { guardThreadTeardown } from './conn-peek.ts';

/** [status line and headers up to Date, body, whether it holds until the snapshot changes]. */
export type KnownAnswer = [Buffer, Buffer, boolean];

interface Addon {
  create(
    seq: Int32Array, seqIndex: number, stats: Int32Array, statsIndex: number,
    decide: (head: boolean, target: string) => KnownAnswer | null,
    handoff: (fd: number, unsent: Buffer, unread: Buffer, headAgeMs: number) => boolean,
    closed: () => void,
  ): object;
  take(server: object, fd: number, peeked: Uint8Array): boolean;
  drain(server: object): [number, number];
  open(server: object): number;
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
  if (path === '/admin/metadata' || port.pages.answer(head ? 'HEAD' : 'GET', path, '')) return null;
  const d = port.router.route(reader.current(), path);
  if (d.kind !== 'redirect') return null;
  // The query goes along, as through uWS; an answer with one is not kept.
  const location = q < 0 ? d.location : `${d.location}${target.slice(q)}`;
  return [
    Buffer.from(`${REDIRECT_LINE}Location: ${location}\r\n${CONTENT_TYPE}`, 'latin1'),
    Buffer.from(replyText('redirect', location)),
    q < 0 && port.router.remembers(path, d),
  ];
}

export interface KnownAnswersOptions {
  reader: SnapshotReader;
  stats: WorkerStats;
  port: DoorPort;
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
    const seq = o.reader.seqSlot();
    const redirects = o.stats.slot(S.REDIRECTS);
    this.#server = a.create(
      seq.words, seq.index, redirects.words, redirects.index,
      (head, target) => redirectAnswer(o.reader, o.port, head, target),
      o.handoff, o.closed,
    );
  }

  /**
   * Offers a connection whose first request `peeked` holds, unread: true
   * when the addon owns `fd` from now on, false when the caller still does.
   */
  take(fd: number, peeked: Uint8Array): boolean {
    return this.#addon.take(this.#server, fd, peeked);
  }

  /** Redirects answered, and the nanoseconds spent on them, since the last call. */
  drain(): [number, number] {
    return this.#addon.drain(this.#server);
  }

  /** Connections held. */
  get open(): number {
    return this.#addon.open(this.#server);
  }

  /** Closes every connection held; none are taken after. */
  close(): void {
    this.#addon.close(this.#server);
  }
}
