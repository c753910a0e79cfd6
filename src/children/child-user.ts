/**
 * Who radiod's children (Icecast, liquidsoap, the embedded etcd) run as.
 *
 * A radiod that is not root runs them as itself: it cannot do otherwise
 * without a capability that would also let it become root again, and the
 * systemd unit already starts it as the unprivileged `radioai`. A radiod
 * started as root (by hand, or by an init system without `User=`) hands
 * every child to an unprivileged user instead: the package's `radioai`
 * system user when it exists, else `nobody`. None of them needs root:
 * Icecast binds only ICECAST_INTERNAL_PORT (8001 by default), liquidsoap
 * only connects out, the embedded etcd binds 127.0.0.1 ports above 1024.
 * The files holding passwords stay radiod's, readable by that user through
 * its group only (private-files.ts).
 */
import { readFileSync } from 'node:fs';
import { RadioError } from '../core/errors.ts';

export interface ChildUser {
  /** User and group names, for logs and for Icecast's <changeowner>. */
  name: string;
  group: string;
  uid: number;
  gid: number;
}

/** The users tried, in order, when radiod runs as root. */
export const CHILD_USERS = ['radioai', 'nobody'] as const;

/** name -> [id, primary gid] from /etc/passwd text, or name -> [id] from /etc/group text. */
function table(text: string): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 3 || f[0] === '' || line.startsWith('#')) continue;
    const id = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(id)) m.set(f[0]!, Number.isInteger(gid) && f[3] !== '' ? [id, gid] : [id]);
  }
  return m;
}

/**
 * The user children run as, from the effective uid and the texts of
 * /etc/passwd and /etc/group: null when radiod is not root (children run
 * as radiod's own user). Throws when root finds no unprivileged user.
 */
export function pickChildUser(euid: number, passwd: string, group: string): ChildUser | null {
  if (euid !== 0) return null;
  const users = table(passwd);
  const groups = table(group);
  for (const name of CHILD_USERS) {
    const u = users.get(name);
    if (u === undefined || u.length < 2 || u[0] === 0 || u[1] === 0) continue;
    const gid = u[1]!;
    const groupName = [...groups].find(([, ids]) => ids[0] === gid)?.[0] ?? String(gid);
    return { name, group: groupName, uid: u[0]!, gid };
  }
  throw new RadioError('RADIOAI_ERR_CHILD_START',
    `radiod runs as root and found no unprivileged user (${CHILD_USERS.join(', ')}) in /etc/passwd to run Icecast, liquidsoap and etcd as; install the radioai package or create the user radioai`);
}

let cached: { user: ChildUser | null } | null = null;

/** pickChildUser for this process, read once (a user added later needs a restart). */
export function childUser(): ChildUser | null {
  if (cached === null) {
    const euid = process.geteuid?.() ?? -1;
    cached = { user: euid === 0 ? pickChildUser(euid, readFileSync('/etc/passwd', 'utf8'), readFileSync('/etc/group', 'utf8')) : null };
  }
  return cached.user;
}
