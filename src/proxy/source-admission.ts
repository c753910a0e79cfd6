/**
 * One admission path for every source, on either public port and in every
 * dialect (SOURCE over HTTP/1.0 or ICE/1.0, PUT with a length, chunked or
 * neither), and for title updates: the mount must exist, the credentials
 * must be plausible (HTTP Basic, user name the mount's own or Icecast's
 * default `source`), and there must be a master to carry the connection to.
 * The master's Icecast then checks the password, which no worker knows.
 *
 * Clients that log in as `source` (darkice has no user setting at all;
 * libshout's default user is `source`) get their user name rewritten to the
 * mount's, since each mount's Icecast login is its own user name.
 */
import type { Snapshot } from '../shared/snapshot.ts';
import { AUTH_CHALLENGE, text, type Answer } from './answers.ts';
import { masterIcecast, type Target } from './source-forward.ts';

export type Admission =
  | { kind: 'admit'; target: Target; authorization: string }
  | { kind: 'refuse'; answer: Answer };

/** Icecast's default source user name. */
export const DEFAULT_SOURCE_USER = 'source';

/** user and password from an `Authorization: Basic` header, or null. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | null {
  const m = /^\s*basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header ?? '');
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

const unauthorized = (why: string): Admission => ({ kind: 'refuse', answer: text(401, why, [AUTH_CHALLENGE]) });

export function admitSource(snap: Snapshot, mountPath: string, authorization: string | undefined): Admission {
  const mount = snap.mounts.find((m) => m.path === mountPath);
  if (!mount) return { kind: 'refuse', answer: text(404, 'no such mount\n') };
  const creds = basicCredentials(authorization);
  if (!creds) return unauthorized('this mount needs its user name and password (HTTP Basic)\n');
  const user = mount.info.username;
  if (creds.user !== DEFAULT_SOURCE_USER && creds.user !== user) return unauthorized('wrong username or password\n');
  const target = masterIcecast(snap);
  if (!target) return { kind: 'refuse', answer: text(503, 'no master right now (it is being elected); try again in a few seconds\n') };
  const login = creds.user === DEFAULT_SOURCE_USER && user !== '' ? user : creds.user;
  return { kind: 'admit', target, authorization: `Basic ${Buffer.from(`${login}:${creds.password}`).toString('base64')}` };
}
