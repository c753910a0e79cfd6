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

export function text(status: number, body: string, extra: [string, string][] = []): Answer {
  return { status, headers: [['Content-Type', 'text/plain; charset=utf-8'], ...extra], body };
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
