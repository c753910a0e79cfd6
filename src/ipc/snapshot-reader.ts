/**
 * Reads the cluster snapshot from shared memory in a worker thread.
 *
 * `current()` costs one atomic load while nothing has changed: the decoded
 * snapshot is cached by sequence number. After a change it copies the
 * snapshot under the sequence lock and retries when the writer was active
 * (odd SEQ) or moved on (SEQ differs after the copy), so it never returns a
 * half-written snapshot. The writer holds the lock for microseconds; if a
 * read keeps failing anyway, the last good snapshot is returned.
 */
import { F_DRAINING, F_ETCD_CONNECTED, F_OUT_OF_SERVICE, F_STATE_LOADED, H, geometryOf, type Geometry } from './layout.ts';
import { SALT_BYTES } from './credential.ts';
import { MOUNT_RECORD, NODE_RECORD, USED, readRecord, type RecordSource } from './records.ts';
import type { Snapshot, SnapshotMount, SnapshotNode } from './snapshot.ts';

const MAX_TRIES = 1000;

export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  seq: 0, contentVersion: 0, etcdConnected: false, stateLoaded: false, draining: false, outOfService: false, etcdSeenAt: 0,
  self: null, master: null, dropped: 0, zoneSerial: 0, nodes: [], mounts: [], credentialSalt: '',
});

export class SnapshotReader {
  readonly #words: Int32Array;
  readonly #bytes: Buffer;
  /** The word area as bytes, for the credential hashes. */
  readonly #raw: Buffer;
  readonly #g: Geometry;
  readonly #source: RecordSource;
  /** Written once when the buffer is allocated. */
  readonly #salt: string;
  #cached: Snapshot = EMPTY_SNAPSHOT;
  #cachedSeq = -1;
  /** Reads that had to be retried because the writer was active: for tests and metrics. */
  retries = 0;

  constructor(sab: SharedArrayBuffer) {
    this.#g = geometryOf(sab);
    this.#words = new Int32Array(sab, 0, this.#g.stringBase / 4);
    this.#bytes = Buffer.from(sab, this.#g.stringBase, this.#g.stringBytes);
    this.#raw = Buffer.from(sab, 0, this.#g.stringBase);
    this.#salt = this.#raw.toString('hex', H.SALT * 4, H.SALT * 4 + SALT_BYTES);
    this.#source = { words: this.#words, raw: this.#raw, str: (off, len) => this.#str(off, len) };
  }

  /** The sequence number now; cheap, for callers that cache derived data. */
  seq(): number {
    return Atomics.load(this.#words, H.SEQ);
  }

  /** Where the sequence number lives, for native code that watches it (native/known-answers). */
  seqSlot(): { words: Int32Array; index: number } {
    return { words: this.#words, index: H.SEQ };
  }

  current(): Snapshot {
    const seq = Atomics.load(this.#words, H.SEQ);
    if (seq === this.#cachedSeq) return this.#cached;
    for (let i = 0; i < MAX_TRIES; i++) {
      const before = Atomics.load(this.#words, H.SEQ);
      if ((before & 1) === 0) {
        let snap: Snapshot | null = null;
        try {
          snap = this.#decode(before);
        } catch {
          // A torn copy can hold nonsense offsets; the sequence check below rejects it.
        }
        if (Atomics.load(this.#words, H.SEQ) === before && snap) {
          this.#cached = snap;
          this.#cachedSeq = before;
          return snap;
        }
      }
      this.retries++;
    }
    return this.#cached;
  }

  #str(off: number, len: number): string {
    if (len <= 0) return '';
    if (off < 0 || off + len > this.#bytes.length) throw new RangeError('string out of range');
    return this.#bytes.toString('utf8', off, off + len);
  }

  #decode(seq: number): Snapshot {
    const w = this.#words;
    const g = this.#g;
    const flags = w[H.FLAGS]!;
    const nodeHigh = Math.min(w[H.NODE_HIGH]!, g.maxNodes);
    const mountHigh = Math.min(w[H.MOUNT_HIGH]!, g.maxMounts);
    const nodes: SnapshotNode[] = [];
    const nameBySlot: (string | undefined)[] = [];
    for (let slot = 0; slot < nodeHigh; slot++) {
      const b = g.nodeBase + slot * NODE_RECORD.words;
      if (w[b + USED] === 0) continue;
      const node = { slot, ...readRecord(NODE_RECORD, this.#source, b) } as unknown as SnapshotNode;
      nodes.push(node);
      nameBySlot[slot] = node.name;
    }
    const mounts: SnapshotMount[] = [];
    const pathBySlot: (string | undefined)[] = [];
    const fallbackSlots: number[] = [];
    for (let slot = 0; slot < mountHigh; slot++) {
      const b = g.mountBase + slot * MOUNT_RECORD.words;
      if (w[b + USED] === 0) continue;
      const readyOn: string[] = [];
      const rb = g.readyBase + slot * g.maskWords;
      for (let k = 0; k < g.maskWords; k++) {
        let bits = w[rb + k]!;
        while (bits !== 0) {
          const bit = 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          const name = nameBySlot[k * 32 + bit];
          if (name !== undefined) readyOn.push(name);
        }
      }
      const mount = { slot, ...readRecord(MOUNT_RECORD, this.#source, b), fallbackPath: null, readyOn } as unknown as SnapshotMount;
      pathBySlot[slot] = mount.path;
      fallbackSlots.push(w[b + MOUNT_RECORD.extra.fallbackSlot!]!);
      mounts.push(mount);
    }
    mounts.forEach((m, i) => {
      const fs = fallbackSlots[i]!;
      m.fallbackPath = fs >= 0 ? (pathBySlot[fs] ?? null) : null;
    });
    const self = w[H.SELF_NODE]!;
    const master = w[H.MASTER_NODE]!;
    return {
      seq,
      contentVersion: w[H.CONTENT_VERSION]!,
      etcdConnected: (flags & F_ETCD_CONNECTED) !== 0,
      stateLoaded: (flags & F_STATE_LOADED) !== 0,
      draining: (flags & F_DRAINING) !== 0,
      outOfService: (flags & F_OUT_OF_SERVICE) !== 0,
      etcdSeenAt: w[H.ETCD_SEEN_AT]!,
      self: self >= 0 ? (nameBySlot[self] ?? null) : null,
      master: master >= 0 ? (nameBySlot[master] ?? null) : null,
      dropped: w[H.DROPPED]!,
      zoneSerial: w[H.ZONE_SERIAL]! >>> 0,
      nodes,
      mounts,
      credentialSalt: this.#salt,
    };
  }
}
