/**
 * The listener log, the main thread's half: the workers hand over finished
 * listener requests once a second (proxy/access-record.ts), and each becomes
 * one line in the combined format Icecast's access.log uses, which
 * royalty-reporting tools read, with the seconds connected at the end:
 *
 *   203.0.113.7 node1 - [22/Nov/2026:08:01:02 +0000] "GET /live.ogg HTTP/1.1" 200 1843200 "https://station.example/" "VLC/3.0.18 LibVLC/3.0.18" 115
 *
 * The second field, the ident that nothing fills in any more, names the
 * node that served the listener. What a client sent (request, referer, user
 * agent) is escaped, so a hostile header cannot forge a line. The file is
 * opened for appending and opened again on SIGHUP (after logrotate moved
 * it); if the disk cannot keep up, lines beyond a bound are dropped and
 * counted rather than held in memory.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import type { AccessEntry } from '../ipc/messages.ts';

const log = logger('access-log');

/** Bytes waiting for the disk beyond which new lines are dropped. */
export const MAX_BUFFERED = 8 * 1024 * 1024;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** The last second formatted: a batch's lines mostly share a few seconds. */
let clfSecond = -1;
let clfText = '';

/** Common Log Format time, in UTC: `22/Nov/2026:08:01:02 +0000`. */
export function clfTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second === clfSecond) return clfText;
  const d = new Date(ms);
  clfSecond = second;
  clfText = `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
  return clfText;
}

// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\x00-\x1f\x7f-\uffff]/;

/** A client's text inside double quotes: quote, backslash and anything not printable ASCII escaped. */
export function quoted(s: string): string {
  if (s === '') return '"-"';
  // Most requests, referers and user agents are plain ASCII: one test instead of two replaces.
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  // eslint-disable-next-line no-control-regex
  return `"${s.replace(/["\\]/g, (c) => `\\${c}`).replace(/[\x00-\x1f\x7f-\uffff]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  })}"`;
}

export function accessLine(e: AccessEntry, node: string): string {
  return `${e.address} ${node} - [${clfTime(e.at)}] ${quoted(e.request)} ${e.status} ${e.bytes} ${quoted(e.referer)} ${quoted(e.userAgent)} ${Math.max(0, Math.round(e.seconds))}\n`;
}

export class AccessLog {
  readonly #target: string;
  readonly #node: string;
  #out: WriteStream | null = null;
  #failed = false;
  /** Lines lost: the disk could not keep up, or a worker's batch was full. */
  dropped = 0;
  written = 0;

  /** `target` is a file, or `-` for stderr. */
  constructor(target: string, node: string) {
    this.#target = target;
    this.#node = node;
    this.#open();
  }

  #open(): void {
    if (this.#target === '-') return;
    const out = createWriteStream(this.#target, { flags: 'a', mode: 0o640 });
    out.on('open', () => {
      if (this.#failed) log.info(`writing ${this.#target} again`);
      this.#failed = false;
    });
    out.on('error', (err) => {
      if (!this.#failed) log.error(`cannot write the listener log ${this.#target}: ${describe(err)}; lines are dropped until SIGHUP opens it again`);
      this.#failed = true;
      if (this.#out === out) this.#out = null;
    });
    this.#out = out;
  }

  write(entries: readonly AccessEntry[], dropped = 0): void {
    this.dropped += dropped;
    if (entries.length === 0) return;
    const out = this.#target === '-' ? process.stderr : this.#out;
    if (out === null || out.writableLength > MAX_BUFFERED) {
      this.dropped += entries.length;
      return;
    }
    out.write(entries.map((e) => accessLine(e, this.#node)).join(''));
    this.written += entries.length;
  }

  /** Opens the file again (SIGHUP, after logrotate moved it away). */
  reopen(): void {
    if (this.#target === '-') return;
    this.#out?.end();
    this.#open();
  }

  close(): Promise<void> {
    const out = this.#out;
    this.#out = null;
    return new Promise((resolve) => (out ? out.end(resolve) : resolve()));
  }
}
