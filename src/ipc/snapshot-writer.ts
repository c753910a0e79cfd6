/**
 * Publishes the cluster model into the shared snapshot buffer (layout.ts).
 * Only the main thread writes. Each publish takes the sequence lock (SEQ odd),
 * rewrites the tables and the string area, and releases it (SEQ even), then
 * wakes any thread waiting on SEQ.
 *
 * Capacity is checked before the lock is taken: entries that do not fit
 * (no free slot, or no string space) are left out of the snapshot and
 * counted in DROPPED, so running out never corrupts what readers see.
 *
 * Mount passwords never enter the buffer: `credential()` turns a mount's
 * user name and password into the salted hash the workers check logins
 * against (ipc/credential.ts), and only that is published.
 */
import { SALT_BYTES, credentialHash } from './credential.ts';
import { F_DRAINING, F_ETCD_CONNECTED, F_OUT_OF_SERVICE, F_STATE_LOADED, H, allocate, geometry, type Capacity, type Geometry } from './layout.ts';
import { GENERATION, MOUNT_RECORD, NODE_RECORD, USED, textsOf, writeRecord, type RecordLayout, type RecordTarget } from './records.ts';
import type { Snapshot, SnapshotInput, SnapshotMount, SnapshotNode } from './snapshot.ts';

/** Stable slot assignment: an entry keeps its slot for as long as it exists. */
class Slots {
  readonly #byKey = new Map<string, number>();
  readonly #generation: Int32Array;
  readonly size: number;
  constructor(size: number) {
    this.size = size;
    this.#generation = new Int32Array(size);
  }

  /** Assigns slots to `keys` (in order); returns the slot per key, or -1 where none was free. */
  assign(keys: readonly string[]): Map<string, number> {
    const wanted = new Set(keys);
    for (const [k] of this.#byKey) if (!wanted.has(k)) this.#byKey.delete(k);
    const used = new Set(this.#byKey.values());
    let next = 0;
    const out = new Map<string, number>();
    for (const k of keys) {
      let slot = this.#byKey.get(k);
      if (slot === undefined) {
        while (next < this.size && used.has(next)) next++;
        if (next < this.size) {
          slot = next;
          used.add(slot);
          this.#byKey.set(k, slot);
          this.#generation[slot]!++;
        }
      }
      out.set(k, slot ?? -1);
    }
    return out;
  }

  release(key: string): void {
    this.#byKey.delete(key);
  }

  generation(slot: number): number {
    return this.#generation[slot]!;
  }
}

export interface PublishResult {
  seq: number;
  /** Entries left out for lack of capacity, with a reason. */
  dropped: string[];
  changed: boolean;
  /**
   * What readers now see, built from the input and the slots given (not
   * decoded back from the buffer): the main thread's own view, with the
   * slots its per-slot counters are kept under.
   */
  snapshot: Snapshot;
}

export class SnapshotWriter {
  readonly sab: SharedArrayBuffer;
  readonly #g: Geometry;
  readonly #words: Int32Array;
  readonly #bytes: Buffer;
  /** The word area as bytes, for the credential hashes. */
  readonly #raw: Buffer;
  readonly #salt: Buffer;
  /** Hashes already made: the daemon publishes on every model change, several times a second in a large cluster. */
  readonly #credentials = new Map<string, string>();
  readonly #nodeSlots: Slots;
  readonly #mountSlots: Slots;
  #lastContent = '';

  constructor(cap: Capacity) {
    this.sab = allocate(cap);
    this.#g = geometry(cap);
    this.#words = new Int32Array(this.sab, 0, this.#g.stringBase / 4);
    this.#bytes = Buffer.from(this.sab, this.#g.stringBase, this.#g.stringBytes);
    this.#raw = Buffer.from(this.sab, 0, this.#g.stringBase);
    this.#salt = Buffer.from(this.#raw.subarray(H.SALT * 4, H.SALT * 4 + SALT_BYTES));
    this.#nodeSlots = new Slots(cap.maxNodes);
    this.#mountSlots = new Slots(cap.maxMounts);
  }

  /** The hex credential hash of a mount's source login under this buffer's salt: what a mount's `credential` holds. */
  credential(username: string, password: string): string {
    const key = `${username}\0${password}`;
    let hex = this.#credentials.get(key);
    if (hex === undefined) {
      // Old logins are not worth keeping track of one by one: past the bound, start afresh.
      if (this.#credentials.size >= 4 * this.#g.maxMounts) this.#credentials.clear();
      hex = credentialHash(this.#salt, username, password).toString('hex');
      this.#credentials.set(key, hex);
    }
    return hex;
  }

  publish(input: SnapshotInput): PublishResult {
    const g = this.#g;
    const dropped: string[] = [];
    let stringBytes = 0;
    const fits = (n: number): boolean => {
      if (stringBytes + n > g.stringBytes) return false;
      stringBytes += n;
      return true;
    };

    // Plan: slots and string space, before touching the buffer.
    const size = (texts: string[]): number => texts.reduce((a, t) => a + Buffer.byteLength(t), 0);
    /** The entries that have a slot and room for their texts; the others are left out with the reason. */
    const place = <T extends { slot: number }>(kind: 'node' | 'mount', entries: { key: string; value: T }[], record: RecordLayout, slots: Slots, capacity: string): { value: T; texts: string[] }[] => {
      const out: { value: T; texts: string[] }[] = [];
      for (const { key, value } of entries) {
        const texts = textsOf(record, value);
        if (value.slot < 0) dropped.push(`${kind} ${key}: no free ${kind} slot (${capacity})`);
        else if (!fits(size(texts))) {
          dropped.push(`${kind} ${key}: string area full (SNAPSHOT_BYTES=${g.stringBytes})`);
          slots.release(key);
        } else out.push({ value, texts });
      }
      return out;
    };
    const nodeSlot = this.#nodeSlots.assign(input.nodes.map((n) => n.name));
    const nodes = place('node', input.nodes.map((n): { key: string; value: SnapshotNode } => ({ key: n.name, value: { slot: nodeSlot.get(n.name)!, ...n, master: n.name === input.master } })),
      NODE_RECORD, this.#nodeSlots, `SNAPSHOT_NODES=${g.maxNodes}`);
    const mountSlot = this.#mountSlots.assign(input.mounts.map((m) => m.path));
    const mounts = place('mount', input.mounts.map((m): { key: string; value: SnapshotMount } => ({ key: m.path, value: { slot: mountSlot.get(m.path)!, ...m } })),
      MOUNT_RECORD, this.#mountSlots, `SNAPSHOT_MOUNTS=${g.maxMounts}`);
    const slotByName = new Map(nodes.map(({ value: n }) => [n.name, n.slot]));
    const slotByPath = new Map(mounts.map(({ value: m }) => [m.path, m.slot]));
    // References to what was left out are dropped, as a reader would find them.
    for (const { value: mount } of mounts) {
      if (mount.fallbackPath !== null && !slotByPath.has(mount.fallbackPath)) mount.fallbackPath = null;
      // In slot order, as a reader finds them in the bitmap.
      mount.readyOn = [...new Set(mount.readyOn.filter((n) => slotByName.has(n)))].sort((x, y) => slotByName.get(x)! - slotByName.get(y)!);
    }

    const content = JSON.stringify({ ...input, etcdSeenAt: 0, zoneSerial: 0, dropped: dropped.length });
    const changed = content !== this.#lastContent;
    this.#lastContent = content;

    // Write under the sequence lock.
    const w = this.#words;
    const seq = Atomics.add(w, H.SEQ, 1) + 1; // now odd
    let off = 0;
    const putString = (s: string): [number, number] => {
      const len = this.#bytes.write(s, off, 'utf8');
      const at = off;
      off += len;
      return [at, len];
    };
    let flags = 0;
    if (input.etcdConnected) flags |= F_ETCD_CONNECTED;
    if (input.stateLoaded) flags |= F_STATE_LOADED;
    if (input.draining) flags |= F_DRAINING;
    if (input.outOfService) flags |= F_OUT_OF_SERVICE;
    w[H.FLAGS] = flags;
    w[H.ETCD_SEEN_AT] = input.etcdSeenAt;
    if (changed) w[H.CONTENT_VERSION]!++;
    w[H.DROPPED] = dropped.length;
    w[H.ZONE_SERIAL] = input.zoneSerial | 0;
    w[H.SELF_NODE] = input.self !== null ? (slotByName.get(input.self) ?? -1) : -1;
    w[H.MASTER_NODE] = input.master !== null ? (slotByName.get(input.master) ?? -1) : -1;

    const target: RecordTarget = { words: w, raw: this.#raw, put: putString };
    /** Writes each entry at its slot of the table at `base`; returns one past the highest slot. */
    const writeAll = <T extends { slot: number }>(record: RecordLayout, base: number, slots: Slots, entries: { value: T; texts: string[] }[], more?: (b: number, value: T) => void): number => {
      let high = 0;
      for (const { value, texts } of entries) {
        const b = base + value.slot * record.words;
        w[b + USED] = 1;
        w[b + GENERATION] = slots.generation(value.slot);
        writeRecord(record, target, b, value, texts);
        more?.(b, value);
        high = Math.max(high, value.slot + 1);
      }
      return high;
    };
    w.fill(0, g.nodeBase, g.nodeBase + g.maxNodes * NODE_RECORD.words);
    w[H.NODE_HIGH] = writeAll(NODE_RECORD, g.nodeBase, this.#nodeSlots, nodes);

    w.fill(0, g.mountBase, g.mountBase + g.maxMounts * MOUNT_RECORD.words);
    w.fill(0, g.readyBase, g.readyBase + g.maxMounts * g.maskWords);
    const mountHigh = writeAll(MOUNT_RECORD, g.mountBase, this.#mountSlots, mounts, (b, mount) => {
      w[b + MOUNT_RECORD.extra.fallbackSlot!] = mount.fallbackPath !== null ? slotByPath.get(mount.fallbackPath)! : -1;
      const rb = g.readyBase + mount.slot * g.maskWords;
      for (const name of mount.readyOn) {
        const ns = slotByName.get(name)!;
        w[rb + (ns >> 5)]! |= 1 << (ns & 31);
      }
    });
    w[H.MOUNT_HIGH] = mountHigh;
    w[H.STRINGS_USED] = off;

    Atomics.add(w, H.SEQ, 1); // even again: the snapshot is whole
    Atomics.notify(w, H.SEQ);
    const snapshot: Snapshot = {
      seq: seq + 1, contentVersion: w[H.CONTENT_VERSION]!, etcdConnected: input.etcdConnected, stateLoaded: input.stateLoaded,
      draining: input.draining, outOfService: input.outOfService,
      self: input.self !== null && slotByName.has(input.self) ? input.self : null,
      master: input.master !== null && slotByName.has(input.master) ? input.master : null,
      etcdSeenAt: w[H.ETCD_SEEN_AT]!, dropped: dropped.length, zoneSerial: w[H.ZONE_SERIAL]! >>> 0,
      // In slot order, as a reader finds them.
      nodes: nodes.map((n) => n.value).sort((x, y) => x.slot - y.slot), mounts: mounts.map((m) => m.value).sort((x, y) => x.slot - y.slot),
      credentialSalt: this.#salt.toString('hex'),
    };
    return { seq: seq + 1, dropped, changed, snapshot };
  }
}
