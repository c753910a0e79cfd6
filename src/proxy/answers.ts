/**
 * Answers as data: a status, headers and a body, written out by whichever
 * transport carries the connection (uWebSockets.js for short HTTP/1.1
 * requests, the Icecast-compatible door for the rest). Both doors build the
 * same answer for the same request from these helpers, so a client sees the
 * same thing on HTTP_PORT and ICECAST_PORT, over HTTP/1.0 or 1.1.
 */

export interface Answer {
  status: number;
  headers: [string, string][];
  body: string;
}

export const REASONS: Record<number, string> = {
  100: 'Continue', 200: 'OK', 204: 'No Content', 302: 'Found', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 411: 'Length Required', 413: 'Content Too Large', 414: 'URI Too Long',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable',
};

/** "404 Not Found", as uWS's writeStatus() and a status line want it. */
export function statusText(status: number): string {
  return `${status} ${REASONS[status] ?? 'Error'}`;
}

/**
 * Browsers: a player on another origin may read streams, playlists and the
 * status JSON, ask for ICY metadata, and see the icy-* headers.
 */
export const CORS_ORIGIN: [string, string] = ['Access-Control-Allow-Origin', '*'];
export const CORS_EXPOSE: [string, string] = ['Access-Control-Expose-Headers', 'icy-br, icy-description, icy-genre, icy-metaint, icy-name, icy-pub, icy-url'];
const CORS_PREFLIGHT: [string, string][] = [
  CORS_ORIGIN,
  ['Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS'],
  ['Access-Control-Allow-Headers', 'Icy-MetaData, Range, Content-Type, Origin, Accept'],
  ['Access-Control-Max-Age', '86400'],
];

/** What Icecast asks a source or a title update without valid credentials for. */
export const AUTH_CHALLENGE: [string, string] = ['WWW-Authenticate', 'Basic realm="Icecast2 Server"'];

export const TEXT_PLAIN: [string, string] = ['Content-Type', 'text/plain; charset=utf-8'];

export function text(status: number, body: string, extra: [string, string][] = []): Answer {
  return { status, headers: [TEXT_PLAIN, ...extra], body };
}

/** One thing the public ports say on their own: a status and a plain-text body. */
export interface Reply {
  readonly status: number;
  readonly text: string;
}

/**
 * Everything the public ports say themselves (not pages, streams, or an
 * Icecast's answers carried through), by stable key, whichever door,
 * router or hub says it; docs/errors.md lists them for operators. A text
 * holds at most one `{placeholder}`, filled by replyText().
 */
export const REPLIES = {
  // The request itself (http-head.ts; both doors).
  badRequestLine: { status: 400, text: 'malformed request line\n' },
  badHeader: { status: 400, text: 'malformed header\n' },
  requestLineTooLong: { status: 414, text: 'request line too long\n' },
  headTooLarge: { status: 431, text: 'request head too large\n' },
  tooManyHeaders: { status: 431, text: 'too many headers\n' },
  methodNotAllowed: { status: 405, text: 'method not allowed\n' },
  notFound: { status: 404, text: 'not found\n' },
  // Listeners (listen-route.ts, hub.ts, playlists).
  noSuchMount: { status: 404, text: 'no such mount\n' },
  noSource: { status: 503, text: 'this mount has no source right now; try again later\n' },
  nodesFull: { status: 503, text: 'no node can take another listener right now; try again later\n' },
  streamUnavailable: { status: 503, text: 'stream not available, try again\n' },
  redirect: { status: 302, text: '{location}\n' },
  // Sources and title updates (source-admission.ts, source-gate.ts, title-update.ts, icecast-door.ts).
  loginNeeded: { status: 401, text: 'this mount needs its user name and password (HTTP Basic)\n' },
  wrongLogin: { status: 401, text: 'wrong username or password\n' },
  lockedOut: { status: 403, text: 'too many wrong source logins from this address; try again in {seconds} s\n' },
  credentialsUnknown: { status: 503, text: "this mount's credentials are not known on this node yet; try again in a few seconds\n" },
  noMaster: { status: 503, text: 'no master right now (it is being elected); try again in a few seconds\n' },
  masterUnreachable: { status: 503, text: 'the master is not reachable right now (it may be changing); try again in a few seconds\n' },
  masterBrokeOff: { status: 502, text: "the master's Icecast broke off its answer\n" },
  titleModeOnly: { status: 400, text: 'mode=updinfo is the only title update radioai carries\n' },
  // Connections refused at accept (conn-limits.ts).
  busy: { status: 503, text: 'this node is busy; try again in a moment\n' },
  // GET /debug/fault/KIND from loopback (tests only).
  faultInjected: { status: 200, text: 'fault injected\n' },
  noSuchFault: { status: 404, text: 'no such fault\n' },
} as const satisfies Record<string, Reply>;

export type ReplyKey = keyof typeof REPLIES;

/** What a 405 says is allowed. */
export const ALLOW: [string, string] = ['Allow', 'GET, HEAD, OPTIONS, PUT, SOURCE'];

/** Each text split once around its placeholder: the redirect path, which fills one per request, is hot. */
const AROUND = Object.fromEntries(Object.entries(REPLIES).map(([k, r]) => {
  const i = r.text.indexOf('{');
  return [k, i < 0 ? null : [r.text.slice(0, i), r.text.slice(r.text.indexOf('}', i) + 1)] as const];
})) as Record<ReplyKey, readonly [string, string] | null>;

/** `key`'s text with its one `{placeholder}` replaced by `value`. */
export function replyText(key: ReplyKey, value?: string | number): string {
  const around = AROUND[key];
  return around === null || value === undefined ? REPLIES[key].text : `${around[0]}${value}${around[1]}`;
}

/** The table's answer for `key`, as plain text, with `extra` headers. */
export function say(key: ReplyKey, extra: [string, string][] = [], value?: string | number): Answer {
  return text(REPLIES[key].status, replyText(key, value), extra);
}

export function preflight(): Answer {
  return { status: 204, headers: CORS_PREFLIGHT, body: '' };
}

/**
 * The whole answer as HTTP/1.x bytes, for the door. `version` is the
 * client's; the connection always closes after it (Icecast's way).
 */
export function serialize(a: Answer, version: string, head: boolean): string {
  const v = version === 'HTTP/1.1' ? 'HTTP/1.1' : 'HTTP/1.0';
  let out = `${v} ${statusText(a.status)}\r\n`;
  for (const [k, val] of a.headers) out += `${k}: ${val}\r\n`;
  out += `Content-Length: ${Buffer.byteLength(a.body)}\r\nConnection: close\r\n\r\n`;
  return head ? out : out + a.body;
}
