/**
 * Who serves a new connection, decided from its first bytes (read without
 * consuming them): uWebSockets.js, fastest for the short HTTP/1.1 requests
 * that come at high rates (redirects, playlists, pages, health), or the
 * Icecast-compatible door for everything uWS cannot serve as Icecast does:
 * any request that is not HTTP/1.1 (uWS answers 505), sources (uWS
 * mis-reads a PUT without a length), title updates, and listeners who are
 * streamed from this node (uWS would send the stream chunked, which
 * streamripper and other players cannot read).
 *
 * Only the request line is needed to choose. A connection whose line has
 * not all arrived yet is 'more'; one that is too long or malformed goes to
 * the door, which answers it with a clear 400, 414 or 431. uWS gets a
 * connection only once its whole head is there (headState): it would wait
 * for the rest on its own clock, which restarts with every answer on a
 * kept-alive connection.
 */

export type Carrier = 'uws' | 'door' | 'more';

/** A request line longer than this is the door's to refuse. */
export const MAX_REQUEST_LINE = 2048;

const LINE = /^([A-Z]{1,16}) (\/[^ ]*) HTTP\/1\.1\r?$/;

/**
 * `first`: the bytes received so far. `streams(path)`: whether a GET or
 * HEAD of `path` would be streamed by this node.
 */
export function classify(first: Uint8Array, streams: (path: string) => boolean): Carrier {
  const lf = first.indexOf(0x0a);
  if (lf < 0) return first.length >= MAX_REQUEST_LINE ? 'door' : 'more';
  if (lf > MAX_REQUEST_LINE) return 'door';
  const m = LINE.exec(Buffer.from(first.buffer, first.byteOffset, lf).toString('latin1'));
  if (!m) return 'door';
  const method = m[1]!;
  if (method === 'PUT' || method === 'SOURCE') return 'door';
  if (method !== 'GET' && method !== 'HEAD') return 'uws';
  const target = m[2]!;
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (path.startsWith('/admin/')) return 'door';
  return streams(path) ? 'door' : 'uws';
}

/**
 * Whether the first bytes hold a whole head that uWS reads as the door
 * would: 'whole' up to a blank line with every line ended by CRLF, 'door'
 * as soon as a line ends with a bare LF (uWS answers that with 505, the
 * door reads it as old clients mean it), 'partial' otherwise.
 */
export function headState(first: Uint8Array): 'whole' | 'partial' | 'door' {
  for (let i = first.indexOf(0x0a); i >= 0; i = first.indexOf(0x0a, i + 1)) {
    if (i === 0 || first[i - 1] !== 0x0d) return 'door';
    if (i >= 3 && first[i - 2] === 0x0a && first[i - 3] === 0x0d) return 'whole';
  }
  return 'partial';
}
