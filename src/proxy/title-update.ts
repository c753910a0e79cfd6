/**
 * Title updates: `GET /admin/metadata?mount=M&mode=updinfo&song=…` (also
 * `title`, `artist` and `charset`), what libshout, ezstream, ices, BUTT,
 * Mixxx and liquidsoap send for MP3 and AAC streams, to the same host and
 * port as their source. Admitted like a source, by the same login check and
 * the same per-address lockout (source-gate.ts), then carried to the
 * master's Icecast, which holds the source: it puts the
 * title into the stream, the relays' Icecasts read it from there, and every
 * node's hubs pass it to their listeners as ICY StreamTitle.
 */
import { request } from 'node:http';
import { AUTH_CHALLENGE, REPLIES, say, type Answer } from './answers.ts';
import type { RequestHead } from './http-head.ts';
import type { Admission } from './source-admission.ts';

/** How long the master's Icecast has to answer. */
const TIMEOUT_MS = 5000;
/** Icecast's answer is a short XML text; anything longer is cut. */
const MAX_BODY = 16 * 1024;

/** What a title update says, whichever door it came by. */
export interface TitleRequest {
  /** The query string, without the `?`. */
  query: string;
  authorization: string | undefined;
  userAgent: string | undefined;
}

export function titleRequestOf(head: RequestHead): TitleRequest {
  return { query: head.target.slice(head.path.length + 1), authorization: head.headers.get('authorization'), userAgent: head.headers.get('user-agent') };
}

/** `admit`: the door's admission of a login for a mount (source-gate.ts). */
export async function updateTitle(r: TitleRequest, admit: (mount: string, authorization: string | undefined) => Promise<Admission>): Promise<Answer> {
  const query = r.query;
  const q = new URLSearchParams(query);
  if (q.get('mode') !== 'updinfo') return say('titleModeOnly');
  const a = await admit(q.get('mount') ?? '', r.authorization);
  if (a.kind === 'refuse') return a.answer;
  return new Promise((resolve) => {
    const req = request({
      host: a.target.host, port: a.target.port, path: `/admin/metadata?${query}`, agent: false, timeout: TIMEOUT_MS,
      headers: { authorization: a.authorization, 'user-agent': r.userAgent ?? 'radioai' },
    }, (res) => {
      const parts: Buffer[] = [];
      let n = 0;
      res.on('data', (d: Buffer) => {
        if (n < MAX_BODY) parts.push(d);
        n += d.length;
      });
      res.on('end', () => resolve({
        status: res.statusCode ?? REPLIES.masterBrokeOff.status,
        headers: [['Content-Type', String(res.headers['content-type'] ?? 'text/xml')], ...(res.statusCode === 401 ? [AUTH_CHALLENGE] : [])],
        body: Buffer.concat(parts).subarray(0, MAX_BODY).toString('utf8'),
      }));
      res.on('error', () => resolve(say('masterBrokeOff')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(say('masterUnreachable')));
    req.end();
  });
}
