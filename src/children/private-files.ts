/**
 * The files radiod writes for its children and the directories they live
 * in. Files holding passwords (icecast.xml, liquidsoap scripts) belong to
 * radiod and are readable by the child's user through the group only
 * (0640 radiod:child-group): the child reads them but cannot change them,
 * and no other user reads them. Directories a child writes in (Icecast's
 * logs, etcd's data) are the child's own.
 *
 * radiod may be root while a child's user could have placed something in
 * its way (a symlink where radiod writes), so nothing here follows a link:
 * files are created with O_EXCL and changed through their descriptor,
 * ownership is changed with lchown, and a directory that is not a real one
 * is refused.
 */
import { chmodSync, closeSync, fchmodSync, fchownSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RadioError } from '../core/errors.ts';
import type { ChildUser } from './child-user.ts';

export interface Perm {
  uid: number;
  gid: number;
  mode: number;
}

const euid = (): number => process.geteuid?.() ?? -1;

/** The mode a file of radiod's gets: group-readable when a child of another user reads it. */
export function readableMode(reader: ChildUser | null): number {
  return reader ? 0o640 : 0o600;
}

/**
 * Makes `dir` with `mode`; missing directories above it get 0755, so that
 * a child's user can pass through a DATA_DIR radiod made (as it did
 * before children had users of their own).
 */
function makeDir(dir: string, mode: number): void {
  mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
  try {
    mkdirSync(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function realDir(dir: string): Perm {
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new RadioError('RADIOAI_ERR_CHILD_START', `${dir} is not a directory (a symbolic link?); radiod keeps its children's files only in real directories`);
  return st;
}

/** A directory of radiod's whose files a child reads: radiod's, group the child's, 0750. */
export function readableDir(dir: string, reader: ChildUser | null): void {
  makeDir(dir, 0o750);
  const st = realDir(dir);
  if (reader) lchownSync(dir, euid(), reader.gid);
  if (reader || st.uid === euid()) chmodSync(dir, 0o750);
}

/**
 * A directory the child writes in, made the child's. What an earlier
 * radiod left there as root (an embedded etcd's data) is handed over too;
 * a tree another user already owned is handed over one level deep only,
 * since that user could have swapped a subdirectory for a link meanwhile.
 */
export function childDir(dir: string, owner: ChildUser | null, mode = 0o750): void {
  makeDir(dir, mode);
  const st = realDir(dir);
  if (owner) {
    const deep = st.uid === euid();
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        lchownSync(p, owner.uid, owner.gid);
        // A directory entry's type is its own, not a link's target: links are never walked into.
        if (deep && e.isDirectory()) walk(p);
      }
    };
    if (st.uid !== owner.uid || st.gid !== owner.gid) walk(dir);
    lchownSync(dir, owner.uid, owner.gid);
  }
  // Not root: a directory someone else made (an operator's DATA_DIR layout) is left as it is.
  if (owner || st.uid === euid()) chmodSync(dir, mode);
}

/**
 * Replaces `file` atomically with `text`, radiod's and readable by
 * `reader` (see readableMode). The temporary file is created exclusively,
 * so a link left in its place is never followed.
 */
export function writeReadable(file: string, text: string, reader: ChildUser | null): void {
  const tmp = `${file}.tmp`;
  rmSync(tmp, { force: true });
  const mode = readableMode(reader);
  const fd = openSync(tmp, 'wx', mode);
  try {
    if (reader) fchownSync(fd, euid(), reader.gid);
    // The umask may have narrowed the mode given to open.
    fchmodSync(fd, mode);
    const buf = Buffer.from(text);
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Could `user` pass through a directory with these owner and mode bits? */
export function canSearch(p: Perm, user: ChildUser): boolean {
  if (p.uid === user.uid) return (p.mode & 0o100) !== 0;
  if (p.gid === user.gid) return (p.mode & 0o010) !== 0;
  return (p.mode & 0o001) !== 0;
}

/**
 * Could `user` rename or replace what radiod keeps in a directory with
 * these bits? Its owner always can (it may chmod); others through a write
 * bit, unless the sticky bit keeps them to their own entries.
 */
export function canReplaceIn(p: Perm, user: ChildUser): boolean {
  if (p.uid === user.uid) return true;
  if ((p.mode & 0o1000) !== 0) return false;
  if (p.gid === user.gid) return (p.mode & 0o020) !== 0;
  return (p.mode & 0o002) !== 0;
}

/** The first directory from `dir` up to / for which `test` holds, or null. */
export function firstAncestor(dir: string, test: (p: Perm) => boolean, stat: (d: string) => Perm = lstatSync): string | null {
  for (let d = dir; ; d = dirname(d)) {
    if (test(stat(d))) return d;
    if (d === dirname(d)) return null;
  }
}
