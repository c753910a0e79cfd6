/**
 * radiod's native addons (native/*) are optional: each has a slower path in
 * JavaScript, and an environment setting that chooses that path, so that
 * tests and benchmarks can compare the two. One loader for all of them.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { TLSSocket } from 'node:tls';

const require = createRequire(import.meta.url);

/** What an addon answers (as -errno) when a socket has nothing to read, or no room to write. */
export const EAGAIN = -constants.errno.EAGAIN;

/** An addon, or null and why not. */
export interface Loaded<T> {
  readonly addon: T | null;
  readonly why: string;
}

/**
 * Loads the package `pkg`, unless the environment variable `env` is `off`
 * (then `why` says so) or it is not built (then `why` is the first line of
 * the error).
 */
export function loadAddon<T>(pkg: string, env: string, off: string): Loaded<T> {
  if (process.env[env] === off) return { addon: null, why: `${env}=${off}` };
  try {
    return { addon: require(pkg) as T, why: '' };
  } catch (err) {
    return { addon: null, why: (err as Error).message.split('\n')[0]! };
  }
}

/**
 * The descriptor of a plain TCP socket, for native code to work on, or -1:
 * a TLS socket's bytes are only Node's TLS layer's to read and write, and a
 * socket without a handle (destroyed, or not connected) has none.
 */
export function plainFd(sock: Socket): number {
  if (sock instanceof TLSSocket || sock.destroyed) return -1;
  const fd = (sock as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}
