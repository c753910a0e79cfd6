/**
 * The mount record stored in etcd, its validation (used for radioctl input,
 * restore files and what is read back from etcd) and credential generation.
 */
import { randomBytes } from 'node:crypto';
import { RadioError } from '../core/errors.ts';
import { mountPathProblem } from '../core/mount-path.ts';

export const CODECS = ['mp3', 'vorbis', 'opus'] as const;
export type Codec = (typeof CODECS)[number];

export interface Transcode {
  source: string;
  codec: Codec;
  /** kbit/s */
  bitrate: number;
  /** Hz */
  samplerate: number;
  channels: 1 | 2;
  /** Encoder quality, codec-specific (mp3: 0 best .. 9; vorbis: -1 .. 10); null = encoder default. */
  quality: number | null;
}

export interface MountRecord {
  path: string;
  username: string;
  password: string;
  /** External upstream the master pulls this mount from, or null. */
  relay: string | null;
  /** Mount listeners move to when this mount has no source, or null. */
  fallback: string | null;
  transcode: Transcode | null;
  createdAt: string;
  /**
   * When `radioctl kick-source` last asked for the mount's live source to be
   * dropped (ISO time); sources connected before it are let go. Absent: never.
   */
  kickedAt?: string | null;
}

const invalid = (msg: string): never => {
  throw new RadioError('RADIOAI_ERR_MOUNT_INVALID', msg);
};

export function checkMountPath(path: string): string {
  const problem = mountPathProblem(path);
  if (problem !== null) throw new RadioError('RADIOAI_ERR_MOUNT_PATH', `invalid mount path "${path}": ${problem}`);
  return path;
}

export function checkRelayUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return invalid(`relay "${url}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') invalid(`relay "${url}" must be an http:// or https:// URL`);
  if (/[\s<>"']/.test(url)) invalid(`relay "${url}" contains characters that must be percent-encoded`);
  return url;
}

/** The character set of mount user names and passwords (and of the generated admin passwords). */
export const CREDENTIAL = /^[A-Za-z0-9._~-]{1,128}$/;

/** A short random source username: Icecast and source clients accept it anywhere. */
export function newUsername(): string {
  return `src-${randomBytes(6).toString('hex')}`;
}

/** 192 random bits, URL-safe so it survives any client's URL or config syntax. */
export function newPassword(): string {
  return randomBytes(24).toString('base64url');
}

export function defaultCodecFor(path: string): Codec {
  if (/\.(ogg|oga)$/i.test(path)) return 'vorbis';
  if (/\.opus$/i.test(path)) return 'opus';
  return 'mp3';
}

const OPUS_RATES = [8000, 12000, 16000, 24000, 48000];

export function checkTranscode(t: Partial<Transcode> & { source: string }, path: string): Transcode {
  checkMountPath(t.source);
  if (t.source === path) invalid('a transcoding mount cannot use itself as its source');
  const codec = t.codec ?? defaultCodecFor(path);
  if (!CODECS.includes(codec)) invalid(`codec "${String(codec)}" is not one of ${CODECS.join(', ')}`);
  const bitrate = t.bitrate ?? 128;
  if (!Number.isInteger(bitrate) || bitrate < 8 || bitrate > 512) invalid(`bitrate ${bitrate} is not a whole number of kbit/s from 8 to 512`);
  const samplerate = t.samplerate ?? (codec === 'opus' ? 48000 : 44100);
  if (!Number.isInteger(samplerate) || samplerate < 8000 || samplerate > 192000) invalid(`samplerate ${samplerate} is not a whole number of Hz from 8000 to 192000`);
  if (codec === 'opus' && !OPUS_RATES.includes(samplerate)) invalid(`opus takes a samplerate of ${OPUS_RATES.join(', ')}`);
  const channels = t.channels ?? 2;
  if (channels !== 1 && channels !== 2) invalid(`channels ${String(channels)} must be 1 or 2`);
  const quality = t.quality ?? null;
  if (quality !== null) {
    if (typeof quality !== 'number' || !Number.isFinite(quality)) invalid('quality must be a number');
    if (codec === 'mp3' && (quality < 0 || quality > 9 || !Number.isInteger(quality))) invalid('mp3 quality is a whole number from 0 (best) to 9');
    if (codec === 'vorbis' && (quality < -1 || quality > 10)) invalid('vorbis quality is from -1 to 10');
    if (codec === 'opus' && (quality < 0 || quality > 10 || !Number.isInteger(quality))) invalid('opus quality (complexity) is a whole number from 0 to 10');
  }
  return { source: t.source, codec, bitrate, samplerate, channels, quality };
}

/** Validates an untrusted object (restore file, etcd value) as a mount record. */
export function parseMountRecord(value: unknown): MountRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return invalid('a mount must be a JSON object');
  const v = value as Record<string, unknown>;
  const known = new Set(['path', 'username', 'password', 'relay', 'fallback', 'transcode', 'createdAt', 'kickedAt']);
  for (const k of Object.keys(v)) if (!known.has(k)) invalid(`unknown field "${k}"`);
  if (typeof v.path !== 'string') return invalid('"path" must be a string');
  const path = checkMountPath(v.path);
  for (const f of ['username', 'password'] as const) {
    if (typeof v[f] !== 'string' || !CREDENTIAL.test(v[f])) invalid(`${path}: "${f}" must be 1-128 characters of A-Z a-z 0-9 . _ ~ -`);
  }
  const relay = v.relay ?? null;
  if (relay !== null && typeof relay !== 'string') invalid(`${path}: "relay" must be a URL or null`);
  const fallback = v.fallback ?? null;
  if (fallback !== null) {
    if (typeof fallback !== 'string') invalid(`${path}: "fallback" must be a mount path or null`);
    checkMountPath(fallback as string);
    if (fallback === path) invalid(`${path}: a mount cannot be its own fallback`);
  }
  let transcode: Transcode | null = null;
  if (v.transcode !== undefined && v.transcode !== null) {
    if (typeof v.transcode !== 'object' || Array.isArray(v.transcode)) invalid(`${path}: "transcode" must be an object or null`);
    const t = v.transcode as Record<string, unknown>;
    if (typeof t.source !== 'string') invalid(`${path}: "transcode.source" must be a mount path`);
    transcode = checkTranscode(t as unknown as Transcode, path);
  }
  if (relay !== null && transcode !== null) invalid(`${path}: a mount is either relayed or transcoded, not both`);
  const createdAt = typeof v.createdAt === 'string' ? v.createdAt : new Date(0).toISOString();
  const kickedAt = v.kickedAt ?? null;
  if (kickedAt !== null && (typeof kickedAt !== 'string' || !Number.isFinite(Date.parse(kickedAt)))) invalid(`${path}: "kickedAt" must be an ISO time or null`);
  return {
    path,
    username: v.username as string,
    password: v.password as string,
    relay: relay === null ? null : checkRelayUrl(relay as string),
    fallback: fallback as string | null,
    transcode,
    createdAt,
    ...(kickedAt !== null ? { kickedAt: kickedAt as string } : {}),
  };
}

/** When the mount's source was last kicked, in Unix seconds; 0 for never. */
export function kickedSeconds(m: Pick<MountRecord, 'kickedAt'>): number {
  const t = m.kickedAt ? Date.parse(m.kickedAt) : NaN;
  return Number.isFinite(t) ? Math.floor(t / 1000) : 0;
}
