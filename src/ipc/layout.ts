/**
 * The shared-memory layout of the cluster snapshot, declared once.
 *
 * One SharedArrayBuffer holds an Int32 area (header, node table, mount table,
 * per-mount readiness bitmaps) followed by a byte area for strings:
 *
 *   +--------+-------------------+--------------------+------------------+---------+
 *   | header | node table        | mount table        | ready bitmaps    | strings |
 *   | 20 w   | maxNodes * 16 w   | maxMounts * 18 w   | maxMounts * M w  | bytes   |
 *   +--------+-------------------+--------------------+------------------+---------+
 *   (w = Int32 word, M = ceil(maxNodes / 32))
 *
 * The main thread is the only writer. It uses a sequence lock: SEQ is odd
 * while a snapshot is being written and even when it is whole, so a reader
 * that sees the same even SEQ before and after its copy has a consistent
 * snapshot (see snapshot-reader.ts). Slots are stable: a node or mount keeps
 * its slot while it exists, so per-slot counters kept elsewhere stay valid;
 * GENERATION changes when a slot is given to another entry.
 */
import { randomFillSync } from 'node:crypto';
import { SALT_BYTES } from './credential.ts';

export const MAGIC = 0x52414449; // "RADI"
export const LAYOUT_VERSION = 3;

/** Header words. */
export const H = {
  MAGIC: 0,
  VERSION: 1,
  /** Sequence lock: odd while writing. */
  SEQ: 2,
  MAX_NODES: 3,
  MAX_MOUNTS: 4,
  STRING_BYTES: 5,
  /** One past the highest node slot in use. */
  NODE_HIGH: 6,
  /** One past the highest mount slot in use. */
  MOUNT_HIGH: 7,
  STRINGS_USED: 8,
  /** Slot of this node, or -1 before it has registered. */
  SELF_NODE: 9,
  /** Slot of the elected master, or -1 when there is none. */
  MASTER_NODE: 10,
  /** F_* bits below. */
  FLAGS: 11,
  /** Unix seconds of the last successful contact with etcd. */
  ETCD_SEEN_AT: 12,
  /** Increases whenever the published content changes (the DNS zone serial follows it). */
  CONTENT_VERSION: 13,
  /** Entries the capacity could not hold at the last publish (0 = everything fit). */
  DROPPED: 14,
  /** The DNS zone's SOA serial: moves when the zone's answers would change. */
  ZONE_SERIAL: 15,
  /** 4 words: the random salt of the mounts' credential hashes (credential.ts), fixed for the buffer's life. */
  SALT: 16,
} as const;
export const HEADER_WORDS = 20;

/** Header FLAGS bits. */
export const F_ETCD_CONNECTED = 1 << 0;
/** The model has been read from etcd at least once. */
export const F_STATE_LOADED = 1 << 1;
/** The daemon is shutting down: health answers 503. */
export const F_DRAINING = 1 << 2;
/** Cut off from etcd while other nodes exist: health answers 503 and this node sends listeners elsewhere. */
export const F_OUT_OF_SERVICE = 1 << 3;

/** Node record words. */
export const N = {
  USED: 0,
  GENERATION: 1,
  NAME_OFF: 2,
  NAME_LEN: 3,
  /** Comma-joined addresses. */
  ADDR_OFF: 4,
  ADDR_LEN: 5,
  HTTP_PORT: 6,
  DNS_PORT: 7,
  ICECAST_PORT: 8,
  /** NF_* bits below. */
  FLAGS: 9,
  LISTENERS: 10,
  /** Measured outbound rate, kbit/s. */
  BANDWIDTH_KBPS: 11,
  /** 0 = unlimited. */
  MAX_LISTENERS: 12,
  /** kbit/s, 0 = unlimited. */
  BANDWIDTH_LIMIT_KBPS: 13,
  /** Port of the node's own Icecast server. */
  ICECAST_INTERNAL_PORT: 14,
  /** HTTPS_PORT while the node serves HTTPS (it has a certificate), else 0. */
  HTTPS_PORT: 15,
} as const;
export const NODE_WORDS = 16;

/** Node FLAGS bits. */
export const NF_ALIVE = 1 << 0;
export const NF_MASTER = 1 << 1;
export const NF_ICECAST_READY = 1 << 2;
export const NF_ETCD_HEALTHY = 1 << 3;
export const NF_PROXY = 1 << 4;

/** Mount record words. */
export const M = {
  USED: 0,
  GENERATION: 1,
  PATH_OFF: 2,
  PATH_LEN: 3,
  /** MF_* bits below. */
  FLAGS: 4,
  /** Slot of the fallback mount, or -1. */
  FALLBACK_SLOT: 5,
  /** Listeners across the cluster, from node status. */
  LISTENERS: 6,
  /** Unix seconds of the last `radioctl kick-source`; sources carried since before it are dropped. 0: never. */
  KICKED_AT: 7,
  /** JSON of the mount's StreamInfo (snapshot.ts): what players are shown, never a password. */
  INFO_OFF: 8,
  INFO_LEN: 9,
  /** 8 words: SHA-256 of the salt, the source user name and password (credential.ts); all zero when unknown. */
  CREDENTIAL: 10,
} as const;
export const MOUNT_WORDS = 18;

/** Mount FLAGS bits. */
export const MF_RELAY = 1 << 0;
export const MF_TRANSCODED = 1 << 1;
export const MF_HAS_FALLBACK = 1 << 2;
export const MF_SOURCE_CONNECTED = 1 << 3;

export interface Capacity {
  maxNodes: number;
  maxMounts: number;
  stringBytes: number;
}

/** Word offsets of each area, computed from the capacity. */
export interface Geometry extends Capacity {
  maskWords: number;
  nodeBase: number;
  mountBase: number;
  readyBase: number;
  /** Byte offset of the string area. */
  stringBase: number;
  totalBytes: number;
}

export function geometry(cap: Capacity): Geometry {
  const maskWords = Math.ceil(cap.maxNodes / 32);
  const nodeBase = HEADER_WORDS;
  const mountBase = nodeBase + cap.maxNodes * NODE_WORDS;
  const readyBase = mountBase + cap.maxMounts * MOUNT_WORDS;
  const stringBase = (readyBase + cap.maxMounts * maskWords) * 4;
  return { ...cap, maskWords, nodeBase, mountBase, readyBase, stringBase, totalBytes: stringBase + cap.stringBytes };
}

/** Reads the capacity back from a buffer's header (readers get only the buffer). */
export function geometryOf(sab: SharedArrayBuffer): Geometry {
  const h = new Int32Array(sab, 0, HEADER_WORDS);
  if (h[H.MAGIC] !== MAGIC || h[H.VERSION] !== LAYOUT_VERSION) {
    throw new Error(`not a radioai snapshot buffer (magic ${h[H.MAGIC]}, version ${h[H.VERSION]})`);
  }
  return geometry({ maxNodes: h[H.MAX_NODES]!, maxMounts: h[H.MAX_MOUNTS]!, stringBytes: h[H.STRING_BYTES]! });
}

export function allocate(cap: Capacity): SharedArrayBuffer {
  const g = geometry(cap);
  const sab = new SharedArrayBuffer(g.totalBytes);
  const h = new Int32Array(sab, 0, HEADER_WORDS);
  h[H.MAGIC] = MAGIC;
  h[H.VERSION] = LAYOUT_VERSION;
  h[H.MAX_NODES] = cap.maxNodes;
  h[H.MAX_MOUNTS] = cap.maxMounts;
  h[H.STRING_BYTES] = cap.stringBytes;
  h[H.SELF_NODE] = -1;
  h[H.MASTER_NODE] = -1;
  randomFillSync(new Uint8Array(sab, H.SALT * 4, SALT_BYTES));
  return sab;
}
