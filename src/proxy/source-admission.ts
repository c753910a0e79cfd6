/**
 * One admission path for every source, on either public port and in every
 * dialect (SOURCE over HTTP/1.0 or ICE/1.0, PUT with a length, chunked or
 * neither), and for title updates: the mount must exist, the login must be
 * right (HTTP Basic, user name the mount's own or Icecast's default
 * `source`, and the mount's password), and there must be a master to carry
 * the connection to. The password is checked here, at the edge, against
 * the salted hash the snapshot carries (ipc/credential.ts), so a wrong
 * one never costs a connection to the master's Icecast; Icecast checks it
 * again when the source arrives.
 *
 * Clients that log in as `source` (darkice has no user setting at all;
 * libshout's default user is `source`) get their user name rewritten to the
 * mount's, since each mount's Icecast login is its own user name.
 */
import { credentialMatches } from '../ipc/credential.ts';
import type { Snapshot } from '../ipc/snapshot.ts';
import { AUTH_CHALLENGE, say, type Answer, type ReplyKey } from './answers.ts';
import { masterIcecast, type Target } from './source-forward.ts';

export type Admission =
  /** `credential`: the mount's credential hash the login matched, which the carried source keeps being checked against. */
  | { kind: 'admit'; target: Target; authorization: string; mount: string; credential: string }
  /** `wrongLogin`: credentials were offered and are wrong, which counts towards the address's lockout (source-guard.ts). */
  | { kind: 'refuse'; answer: Answer; wrongLogin: boolean };

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

const unauthorized = (k: 'loginNeeded' | 'wrongLogin', wrongLogin: boolean): Admission => ({ kind: 'refuse', answer: say(k, [AUTH_CHALLENGE]), wrongLogin });
const refuse = (k: ReplyKey): Admission => ({ kind: 'refuse', answer: say(k), wrongLogin: false });

export function admitSource(snap: Snapshot, mountPath: string, authorization: string | undefined): Admission {
  const mount = snap.mounts.find((m) => m.path === mountPath);
  if (!mount) return refuse('noSuchMount');
  // A request without credentials is how some clients ask which login to send: not a wrong attempt.
  const creds = basicCredentials(authorization);
  if (!creds) return unauthorized('loginNeeded', authorization !== undefined);
  const user = mount.info.username;
  // The same answer for a wrong user and a wrong password: neither tells which part was right.
  if (creds.user !== DEFAULT_SOURCE_USER && creds.user !== user) return unauthorized('wrongLogin', true);
  if (mount.credential === '') return refuse('credentialsUnknown');
  if (!credentialMatches(snap.credentialSalt, mount.credential, user, creds.password)) return unauthorized('wrongLogin', true);
  const target = masterIcecast(snap);
  if (!target) return refuse('noMaster');
  const login = creds.user === DEFAULT_SOURCE_USER && user !== '' ? user : creds.user;
  return {
    kind: 'admit', target, mount: mount.path, credential: mount.credential,
    authorization: `Basic ${Buffer.from(`${login}:${creds.password}`).toString('base64')}`,
  };
}

/**
 * Whether a source admitted with `credential` on `mount` may go on: the
 * mount still exists and its credentials are unchanged. A changed password
 * or user name, or a deleted mount, means the source must be dropped.
 */
export function stillAdmitted(snap: Snapshot, mount: string, credential: string): boolean {
  const m = snap.mounts.find((x) => x.path === mount);
  return m !== undefined && m.credential === credential;
}
