/**
 * One line of the listener log, in the combined format Icecast's
 * access.log uses, which royalty-reporting tools read, with the seconds
 * connected at the end:
 *
 *   203.0.113.7 node1 - [22/Nov/2026:08:01:02 +0000] "GET /live.ogg HTTP/1.1" 200 1843200 "https://station.example/" "VLC/3.0.18 LibVLC/3.0.18" 115
 *
 * The second field, the ident that nothing fills in any more, names the
 * node that served the listener. What a client sent (request, referer, user
 * agent) is escaped, so a hostile header cannot forge a line. The workers
 * format their lines (access-record.ts), so that the main thread only
 * writes what they hand over.
 */

/** What the listener log says of one listener request; `at` is when it ended (Unix ms). */
export interface AccessEntry {
  at: number;
  address: string;
  request: string;
  status: number;
  bytes: number;
  referer: string;
  userAgent: string;
  seconds: number;
}

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
