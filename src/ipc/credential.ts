/**
 * A mount's source credentials as the workers know them: a salted hash of
 * the user name and password, never the password itself.
 *
 * The scheme is one SHA-256 over a random salt (made afresh by each radiod
 * process, kept in the snapshot header), the user name, a NUL and the
 * password; a login is checked by hashing what it offers the same way and
 * comparing with crypto.timingSafeEqual. Why not a slow key-derivation
 * function (scrypt, argon2): every source attempt is checked at the edge,
 * and a deliberately slow hash would let a flood of wrong attempts burn the
 * worker's CPU, which is what this check is there to stop. What the hash
 * protects against is the snapshot being shown (a debug page, a core dump
 * of the shared buffer, a log of a decoded snapshot): it does not reveal
 * the password, the salt makes a precomputed table useless and differs on
 * every node and restart, and radioctl's generated passwords (18 random
 * bytes) are out of reach of guessing from a hash. It is not a defence
 * against the process itself: the main thread holds the real password in
 * the same memory, from etcd, to write Icecast's configuration.
 *
 * The user name is part of the hash so that changing either one changes
 * the credential, which is how a carried source notices it must go.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** Bytes of the per-process salt. */
export const SALT_BYTES = 16;
/** Bytes of a credential hash (SHA-256). */
export const CREDENTIAL_BYTES = 32;

export function credentialHash(salt: Uint8Array, username: string, password: string): Buffer {
  return createHash('sha256').update(salt).update(username, 'utf8').update('\0').update(password, 'utf8').digest();
}

/**
 * Whether `username` and `password` hash to `expected` (hex) under `salt`
 * (hex). An empty or malformed `expected` matches nothing.
 */
export function credentialMatches(saltHex: string, expected: string, username: string, password: string): boolean {
  const want = Buffer.from(expected, 'hex');
  if (want.length !== CREDENTIAL_BYTES) return false;
  return timingSafeEqual(credentialHash(Buffer.from(saltHex, 'hex'), username, password), want);
}
