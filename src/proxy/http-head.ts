/**
 * Parses a request head as Icecast clients send it: HTTP/1.0, HTTP/1.1 or
 * ICE/1.0, methods GET, HEAD, SOURCE, PUT. Bytes may arrive split anywhere;
 * feed() keeps what it has until the blank line. Limits keep a client from
 * holding memory: head size, header count, request-line length.
 */

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

export type HeadResult =
  | { kind: 'more' }
  | { kind: 'head'; head: RequestHead; rest: Buffer }
  | { kind: 'bad'; status: number; reason: string };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export class HeadParser {
  #buf: Buffer = Buffer.alloc(0);

  feed(chunk: Buffer): HeadResult {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let end = this.#buf.indexOf('\r\n\r\n');
    let sep = 4;
    if (end < 0) {
      // Some old source clients end lines with a bare LF.
      end = this.#buf.indexOf('\n\n');
      sep = 2;
    }
    if (end < 0) {
      const firstLine = this.#buf.indexOf('\n');
      if ((firstLine < 0 ? this.#buf.length : firstLine) > LIMITS.requestLine) return { kind: 'bad', status: 414, reason: 'request line too long' };
      if (this.#buf.length > LIMITS.headBytes) return { kind: 'bad', status: 431, reason: 'request head too large' };
      return { kind: 'more' };
    }
    if (end + sep > LIMITS.headBytes) return { kind: 'bad', status: 431, reason: 'request head too large' };
    const raw = this.#buf.subarray(0, end + sep);
    const rest = this.#buf.subarray(end + sep);
    const lines = raw.toString('latin1').split(/\r?\n/).slice(0, -2);
    const [requestLine, ...headerLines] = lines;
    if (requestLine === undefined || requestLine.length > LIMITS.requestLine) return { kind: 'bad', status: 414, reason: 'request line too long' };
    const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01]|ICE\/1\.0)$/.exec(requestLine);
    if (!m) return { kind: 'bad', status: 400, reason: 'malformed request line' };
    if (headerLines.length > LIMITS.headers) return { kind: 'bad', status: 431, reason: 'too many headers' };
    const headers = new Map<string, string>();
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
      if (!TOKEN.test(name)) return { kind: 'bad', status: 400, reason: 'malformed header' };
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
