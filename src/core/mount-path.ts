/**
 * The mount-path rule (docs/radioctl.md), shared by radioctl, the control plane
 * and the workers: starts with `/`, at most 200 characters of
 * `A-Z a-z 0-9 . _ ~ - /`, no empty, `.` or `..` segment, and no playlist
 * suffix (those URLs are the playlists of the mount without it).
 */

export const MAX_MOUNT_PATH = 200;
const ALLOWED = /^[A-Za-z0-9._~\-/]+$/;
const PLAYLIST = /\.(m3u|pls|xspf)$/i;

/** Returns null when `path` is a valid mount path, else the reason it is not. */
export function mountPathProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'must start with "/"';
  if (path.length > MAX_MOUNT_PATH) return `is longer than ${MAX_MOUNT_PATH} characters`;
  if (!ALLOWED.test(path)) return 'may only contain A-Z a-z 0-9 . _ ~ - /';
  const segments = path.slice(1).split('/');
  for (const seg of segments) {
    if (seg === '') return 'has an empty segment';
    if (seg === '.' || seg === '..') return 'has a "." or ".." segment';
  }
  if (PLAYLIST.test(path)) return 'may not end in .m3u, .pls or .xspf';
  return null;
}

export function isMountPath(path: string): boolean {
  return mountPathProblem(path) === null;
}
