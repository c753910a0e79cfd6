/**
 * radiod's native addons (native/*) are optional: each has a slower path in
 * JavaScript, and an environment setting that chooses that path, so that
 * tests and benchmarks can compare the two. One loader for all of them.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';

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
