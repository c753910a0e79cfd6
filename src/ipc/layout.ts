/**
 * The shared-memory layout of the cluster snapshot, declared once.
 *
 * One SharedArrayBuffer holds an Int32 area (header, node table, mount table,
 * per-mount readiness bitmaps) followed by a byte area for strings:
 *
 *   +--------+-------------------+--------------------+------------------+---------+
 *   | header | node table        | mount table        | ready bitmaps    | strings |
 *   | 20 w   | maxNodes * NW     | maxMounts * MW     | maxMounts * B w  | bytes   |
 *   +--------+-------------------+--------------------+------------------+---------+
 *   (w = Int32 word, B = ceil(maxNodes / 32); NW and MW, the words of a
 *   node and a mount record, come from their field tables in records.ts)
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
import { MOUNT_RECORD, NODE_RECORD } from './records.ts';

export const MAGIC = 0x52414449; // "RADI"
export const LAYOUT_VERSION = 4;

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
  const mountBase = nodeBase + cap.maxNodes * NODE_RECORD.words;
  const readyBase = mountBase + cap.maxMounts * MOUNT_RECORD.words;
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
