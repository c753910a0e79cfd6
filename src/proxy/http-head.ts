/**
 * Parses a request head as Icecast clients send it: HTTP/1.0, HTTP/1.1 or
 * ICE/1.0, methods GET, HEAD, SOURCE, PUT. Bytes may arrive split anywhere;
 * feed() keeps what it has until the blank line. Limits keep a client from
 * holding memory: head size, header count, request-line length.
 */
import { REPLIES, type ReplyKey } from './answers.ts';

/** A refusal of the request head, from the answers table (the door adds the newline back). */
const bad = (k: ReplyKey): { kind: 'bad'; status: number; reason: string } => ({ kind: 'bad', status: REPLIES[k].status, reason: REPLIES[k].text.slice(0, -1) });

export const LIMITS = {
  headBytes: 16 * 1024,
  headers: 64,
  requestLine: 2048,
} as const;

export interface RequestHead {
  method: string;
  target: string;
  /** Path part of the target, without the query. */
  path: string;
  version: 'HTTP/1.0' | 'HTTP/1.1' | 'ICE/1.0';
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Map<string, string>;
  /** The raw head bytes, including the blank line. */
  raw: Buffer;
}

/** Does the request's body come in chunks (Transfer-Encoding: chunked)? */
export const isChunked = (head: RequestHead): boolean => /chunked/i.test(head.headers.get('transfer-encoding') ?? '');

export type HeadResult =
  | { kind: 'more' }
  | { kind: 'head'; head: RequestHead; rest: Buffer }
  | { kind: 'bad'; status: number; reason: string };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Pieces shorter than this are copied together into blocks of BLOCK bytes... */
const SMALL = 512;
/** ...so that a head sent a byte at a time is held in a few blocks, not thousands of one-byte buffers. */
const BLOCK = 2048;

export class HeadParser {
  /**
   * What has arrived so far, as a list of pieces: a head sent a byte at a
   * time costs one pass over each byte, where copying everything received
   * so far on each piece made a 16 KiB head cost 16 KiB squared. Small
   * pieces are gathered into shared blocks, which keeps the memory held to
   * about the head's own size.
   */
  #chunks: Buffer[] = [];
  #block: Buffer | null = null;
  #blockUsed = 0;
  #size = 0;
  /** Where the scan for the blank line stands: 0 inside a line, 1 after a LF, 2 after a LF and a CR. */
  #state = 0;
  /** Offset of the first LF, -1 before it arrives. */
  #firstLf = -1;

  #keep(chunk: Buffer): void {
    this.#size += chunk.length;
    if (chunk.length >= SMALL) {
      this.#seal();
      this.#chunks.push(chunk);
      return;
    }
    if (this.#block && this.#blockUsed + chunk.length > this.#block.length) this.#seal();
    this.#block ??= Buffer.allocUnsafe(BLOCK);
    chunk.copy(this.#block, this.#blockUsed);
    this.#blockUsed += chunk.length;
  }

  #seal(): void {
    if (this.#block) this.#chunks.push(this.#block.subarray(0, this.#blockUsed));
    this.#block = null;
    this.#blockUsed = 0;
  }

  feed(chunk: Buffer): HeadResult {
    const base = this.#size;
    let end = -1;
    let state = this.#state;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (b === 0x0a) {
        if (this.#firstLf < 0) this.#firstLf = base + i;
        // A blank line: CRLF CRLF, or LF LF, which some old source clients send.
        if (state !== 0) {
          end = base + i + 1;
          break;
        }
        state = 1;
      } else state = b === 0x0d && state === 1 ? 2 : 0;
    }
    this.#state = state;
    this.#keep(chunk);
    if (end < 0) {
      if ((this.#firstLf < 0 ? this.#size : this.#firstLf) > LIMITS.requestLine) return bad('requestLineTooLong');
      if (this.#size > LIMITS.headBytes) return bad('headTooLarge');
      return { kind: 'more' };
    }
    if (end > LIMITS.headBytes) return bad('headTooLarge');
    this.#seal();
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [];
    const raw = all.subarray(0, end);
    const rest = all.subarray(end);
    const lines = raw.toString('latin1').split(/\r?\n/).slice(0, -2);
    const [requestLine, ...headerLines] = lines;
    if (requestLine === undefined || requestLine.length > LIMITS.requestLine) return bad('requestLineTooLong');
    const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01]|ICE\/1\.0)$/.exec(requestLine);
    if (!m) return bad('badRequestLine');
    if (headerLines.length > LIMITS.headers) return bad('tooManyHeaders');
    const headers = new Map<string, string>();
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
      if (!TOKEN.test(name)) return bad('badHeader');
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    const target = m[2]!;
    const q = target.indexOf('?');
    return {
      kind: 'head',
      head: { method: m[1]!, target, path: q < 0 ? target : target.slice(0, q), version: m[3] as RequestHead['version'], headers, raw: Buffer.from(raw) },
      rest: Buffer.from(rest),
    };
  }
}
