/**
 * The whitelists every value passes before it is written into a generated
 * liquidsoap script or Icecast configuration. Escaping alone is not enough
 * for liquidsoap: it evaluates `#{...}` inside string literals, so a quoted
 * and escaped value can still run code. Each value is therefore checked for
 * its kind (a host is an IP address or a DNS name, a port a whole number
 * from 1 to 65535, a mount path follows the mount-path rule, a credential
 * uses a small character set, an encoder parameter comes from a fixed set or
 * a range), and a value that fails is refused, never passed through: the
 * caller leaves out the mount or transcoder it belongs to and says why.
 */
import { isIP } from 'node:net';
import { RadioError } from '../core/errors.ts';
import { isDomainName } from '../config/settings.ts';
import { mountPathProblem } from '../core/mount-path.ts';
import { CODECS, CREDENTIAL, checkTranscode, type Transcode } from '../state/mount-record.ts';

const refuse = (what: string, value: unknown, rule: string): never => {
  const s = JSON.stringify(value) ?? String(value);
  throw new RadioError('RADIOAI_ERR_UNSAFE_VALUE', `${what} ${s.length > 80 ? `${s.slice(0, 77)}...` : s} refused: ${rule}`);
};

/** An IP address or a DNS name. */
export function safeHost(v: unknown, what = 'host'): string {
  if (typeof v !== 'string' || (isIP(v) === 0 && !isDomainName(v))) return refuse(what, v, 'not an IP address or DNS name');
  return v;
}

/** An IP address. */
export function safeIp(v: unknown, what = 'address'): string {
  if (typeof v !== 'string' || isIP(v) === 0) return refuse(what, v, 'not an IP address');
  return v;
}

/** A whole number in a range (limits, sizes). */
export function safeInteger(v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return refuse(what, v, `not a whole number from ${min} to ${max}`);
  return v;
}

export function safePort(v: unknown, what = 'port'): number {
  return safeInteger(v, 1, 65535, what);
}

export function safeMountPath(v: unknown, what = 'mount path'): string {
  if (typeof v !== 'string') return refuse(what, v, 'not a string');
  const problem = mountPathProblem(v);
  if (problem !== null) return refuse(what, v, problem);
  return v;
}

/** Mount user names and passwords, and the generated admin and source passwords: the mount record's character set. */
export function safeCredential(v: unknown, what = 'credential'): string {
  if (typeof v !== 'string' || !CREDENTIAL.test(v)) return refuse(what, v, 'not 1-128 characters of A-Z a-z 0-9 . _ ~ -');
  return v;
}

/**
 * A credential taken from an external relay URL (decoded from its userinfo):
 * any printable text up to 256 characters, which the XML writer escapes. It
 * only ever goes into the Icecast configuration, never into a script.
 */
export function safeRelayCredential(v: unknown, what = 'relay credential'): string {
  // eslint-disable-next-line no-control-regex
  if (typeof v !== 'string' || v.length > 256 || /[\u0000-\u001f\u007f\uFFFE\uFFFF]/.test(v)) return refuse(what, v, 'not printable text of at most 256 characters');
  return v;
}

/** The path and query of an external relay URL: visible ASCII except the characters that must be percent-encoded. */
export function safeUrlPath(v: unknown, what = 'relay path'): string {
  if (typeof v !== 'string' || v.length > 2048 || !/^\/[\x21-\x7e]*$/.test(v) || /["'<>\\`{}]/.test(v)) return refuse(what, v, 'not a URL path of visible ASCII');
  return v;
}

/** A file path radiod chose (from its own settings): absolute, printable, no XML or script syntax. */
export function safeFilePath(v: unknown, what = 'path'): string {
  if (typeof v !== 'string' || !/^\/[A-Za-z0-9._~\-/+@,=]*$/.test(v)) return refuse(what, v, 'not an absolute path of A-Z a-z 0-9 . _ ~ - / + @ , =');
  return v;
}

/** Encoder parameters: the codec from the fixed set, every number of the right kind and in its range. */
export function safeTranscode(t: Transcode, mount: string): Transcode {
  if (!(CODECS as readonly unknown[]).includes(t.codec)) return refuse('codec', t.codec, `not one of ${CODECS.join(', ')}`);
  for (const f of ['bitrate', 'samplerate', 'channels'] as const) {
    if (typeof t[f] !== 'number' || !Number.isInteger(t[f])) return refuse(f, t[f], 'not a whole number');
  }
  if (t.quality !== null && (typeof t.quality !== 'number' || !Number.isFinite(t.quality))) return refuse('quality', t.quality, 'not a number');
  safeMountPath(t.source, 'transcode source');
  try {
    // The ranges of each codec, as radioctl enforces them.
    return checkTranscode({ ...t }, mount);
  } catch (err) {
    return refuse('encoder parameters of', mount, (err as Error).message);
  }
}
