/**
 * Validation of what nodes write about themselves on their leases:
 * `nodes/<name>` (NodeInfo) and `status/<name>` (NodeStatus). Anyone who can
 * write to etcd can put anything there, and these values end up in DNS
 * answers, Location headers, hub targets, the Icecast configuration and
 * liquidsoap scripts, so each field is checked for its kind before the
 * model keeps the record: the name equals the key and is a DNS label,
 * addresses are IP addresses, ports whole numbers from 1 to 65535, booleans
 * booleans, numbers finite and in range. Unknown extra fields are ignored
 * (a newer node may add some); a record that fails is refused as a whole.
 */
import { isIP } from 'node:net';
import { RadioError } from '../core/errors.ts';
import { isDnsLabel } from '../config/settings.ts';
import { isMountPath } from '../core/mount-path.ts';
import type { MountStatus, NodeInfo, NodeStatus } from './cluster-state.ts';
import type { LiveInfo } from '../icecast/icecast-stats.ts';

/** Addresses a node may advertise; more is not a node but a flood. */
export const MAX_NODE_ADDRESSES = 16;
/** Mounts one status record may describe (the snapshot holds far fewer by default). */
export const MAX_STATUS_MOUNTS = 100_000;
/** Length of a free-text field (version, times, stream descriptions). */
const MAX_TEXT = 1024;
/** Listener counts and the like: within a 32-bit signed counter. */
const MAX_COUNT = 2 ** 31 - 1;

const invalid = (msg: string): never => {
  throw new RadioError('RADIOAI_ERR_NODE_INVALID', msg);
};

const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return invalid(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function port(o: Record<string, unknown>, f: string): number {
  const v = o[f];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) invalid(`"${f}" must be a port from 1 to 65535, not ${show(v)}`);
  return v as number;
}

/** A port that may be 0, meaning "not given" (older nodes had no separate Icecast port). */
function optionalPort(o: Record<string, unknown>, f: string): number {
  if (o[f] === undefined || o[f] === 0) return 0;
  return port(o, f);
}

function bool(o: Record<string, unknown>, f: string): boolean {
  if (typeof o[f] !== 'boolean') invalid(`"${f}" must be true or false, not ${show(o[f])}`);
  return o[f] as boolean;
}

function count(o: Record<string, unknown>, f: string, max = MAX_COUNT): number {
  const v = o[f];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) invalid(`"${f}" must be a whole number from 0 to ${max}, not ${show(v)}`);
  return v as number;
}

function text(o: Record<string, unknown>, f: string, fallback = ''): string {
  const v = o[f];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || v.length > MAX_TEXT) invalid(`"${f}" must be a string of at most ${MAX_TEXT} characters`);
  return v as string;
}

/** True for a node name: a DNS label, as NODE_NAME is (it is a host name under the zone). */
export function isNodeName(s: string): boolean {
  return isDnsLabel(s);
}

/** Validates `nodes/<key>` (already JSON-decoded). */
export function parseNodeInfo(key: string, value: unknown): NodeInfo {
  if (!isNodeName(key)) invalid(`the key's node name ${show(key)} is not a DNS label`);
  const o = object(value, 'a node record');
  if (o.name !== key) invalid(`"name" ${show(o.name)} differs from the key's ${show(key)}`);
  const a = o.addresses;
  if (!Array.isArray(a) || a.length === 0 || a.length > MAX_NODE_ADDRESSES) invalid(`"addresses" must be a list of 1 to ${MAX_NODE_ADDRESSES} IP addresses`);
  for (const addr of a as unknown[]) {
    if (typeof addr !== 'string' || isIP(addr) === 0) invalid(`address ${show(addr)} is not an IP address`);
  }
  return {
    name: key,
    addresses: [...(a as string[])],
    httpPort: port(o, 'httpPort'),
    dnsPort: port(o, 'dnsPort'),
    icecastPort: port(o, 'icecastPort'),
    icecastInternalPort: optionalPort(o, 'icecastInternalPort'),
    proxy: bool(o, 'proxy'),
    maxListeners: count(o, 'maxListeners', 10_000_000),
    bandwidthLimit: count(o, 'bandwidthLimit', Number.MAX_SAFE_INTEGER),
    version: text(o, 'version'),
    startedAt: text(o, 'startedAt'),
  };
}

/** Free text a source sent (titles may be long): a string, cut to MAX_TEXT rather than refused. */
function clipped(o: Record<string, unknown>, f: string, path: string): string {
  const v = o[f] ?? '';
  if (typeof v !== 'string') invalid(`mount ${path}: "info.${f}" must be a string`);
  return (v as string).slice(0, MAX_TEXT);
}

function liveInfo(v: unknown, path: string): LiveInfo {
  const o = object(v, `mount ${path}: "info"`);
  const t = (f: string): string => clipped(o, f, path);
  const b = o.bitrate ?? 0;
  if (typeof b !== 'number' || !Number.isFinite(b) || b < 0 || b > 1_000_000) invalid(`mount ${path}: "info.bitrate" must be a number from 0 to 1000000`);
  return {
    title: t('title'), name: t('name'), description: t('description'), genre: t('genre'),
    url: t('url'), contentType: t('contentType'), bitrate: b as number, streamStart: t('streamStart'),
  };
}

function mountStatus(v: unknown, path: string): MountStatus {
  const o = object(v, `mount ${path}`);
  const ms: MountStatus = { ready: bool(o, 'ready'), source: bool(o, 'source'), listeners: count(o, 'listeners') };
  if (o.info !== undefined) ms.info = liveInfo(o.info, path);
  return ms;
}

/** Validates `status/<key>` (already JSON-decoded). */
export function parseNodeStatus(key: string, value: unknown): NodeStatus {
  if (!isNodeName(key)) invalid(`the key's node name ${show(key)} is not a DNS label`);
  const o = object(value, 'a status record');
  const bw = o.bandwidth;
  if (typeof bw !== 'number' || !Number.isFinite(bw) || bw < 0 || bw > Number.MAX_SAFE_INTEGER) invalid(`"bandwidth" must be a number of bits/s, not ${show(bw)}`);
  const m = object(o.mounts ?? {}, '"mounts"');
  const paths = Object.keys(m);
  if (paths.length > MAX_STATUS_MOUNTS) invalid(`"mounts" lists ${paths.length} mounts, more than ${MAX_STATUS_MOUNTS}`);
  // Every key is checked to be a mount path, which starts with "/": never "__proto__".
  const mounts: Record<string, MountStatus> = {};
  for (const path of paths) {
    if (!isMountPath(path)) invalid(`mount ${show(path)} is not a mount path`);
    mounts[path] = mountStatus(m[path], path);
  }
  return {
    listeners: count(o, 'listeners'),
    bandwidth: bw as number,
    icecastReady: bool(o, 'icecastReady'),
    etcdMember: o.etcdMember === undefined ? false : bool(o, 'etcdMember'),
    // Absent in records from nodes that predate it: serving.
    ...(o.serving === undefined ? {} : { serving: bool(o, 'serving') }),
    ...(o.httpsPort === undefined || o.httpsPort === 0 ? {} : { httpsPort: port(o, 'httpsPort') }),
    mounts,
    updatedAt: text(o, 'updatedAt'),
  };
}
