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
import { CREDENTIAL_BYTES, SALT_BYTES, credentialHash } from './credential.ts';
import {
  F_DRAINING, F_ETCD_CONNECTED, F_OUT_OF_SERVICE, F_STATE_LOADED, H, M, MF_HAS_FALLBACK, MF_RELAY, MF_SOURCE_CONNECTED,
  MF_TRANSCODED, MOUNT_WORDS, N, NF_ALIVE, NF_ETCD_HEALTHY, NF_ICECAST_READY, NF_MASTER, NF_PROXY, NODE_WORDS,
  allocate, geometry, type Capacity, type Geometry,
} from './layout.ts';
import type { SnapshotInput } from './snapshot.ts';

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
    const nodeSlot = this.#nodeSlots.assign(input.nodes.map((n) => n.name));
    const nodes: { slot: number; node: SnapshotInput['nodes'][number]; addr: string }[] = [];
    for (const node of input.nodes) {
      const slot = nodeSlot.get(node.name)!;
      const addr = node.addresses.join(',');
      if (slot < 0) dropped.push(`node ${node.name}: no free node slot (SNAPSHOT_NODES=${g.maxNodes})`);
      else if (!fits(Buffer.byteLength(node.name) + Buffer.byteLength(addr))) {
        dropped.push(`node ${node.name}: string area full (SNAPSHOT_BYTES=${g.stringBytes})`);
        this.#nodeSlots.release(node.name);
      } else nodes.push({ slot, node, addr });
    }
    const mountSlot = this.#mountSlots.assign(input.mounts.map((m) => m.path));
    const mounts: { slot: number; mount: SnapshotInput['mounts'][number]; info: string }[] = [];
    for (const mount of input.mounts) {
      const slot = mountSlot.get(mount.path)!;
      const info = JSON.stringify(mount.info);
      if (slot < 0) dropped.push(`mount ${mount.path}: no free mount slot (SNAPSHOT_MOUNTS=${g.maxMounts})`);
      else if (!fits(Buffer.byteLength(mount.path) + Buffer.byteLength(info))) {
        dropped.push(`mount ${mount.path}: string area full (SNAPSHOT_BYTES=${g.stringBytes})`);
        this.#mountSlots.release(mount.path);
      } else mounts.push({ slot, mount, info });
    }
    const slotByName = new Map(nodes.map((n) => [n.node.name, n.slot]));
    const slotByPath = new Map(mounts.map((m) => [m.mount.path, m.slot]));

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

    w.fill(0, g.nodeBase, g.nodeBase + g.maxNodes * NODE_WORDS);
    let nodeHigh = 0;
    for (const { slot, node, addr } of nodes) {
      const b = g.nodeBase + slot * NODE_WORDS;
      const [nameOff, nameLen] = putString(node.name);
      const [addrOff, addrLen] = putString(addr);
      let nf = 0;
      if (node.alive) nf |= NF_ALIVE;
      if (node.name === input.master) nf |= NF_MASTER;
      if (node.icecastReady) nf |= NF_ICECAST_READY;
      if (node.etcdHealthy) nf |= NF_ETCD_HEALTHY;
      if (node.proxy) nf |= NF_PROXY;
      w[b + N.USED] = 1;
      w[b + N.GENERATION] = this.#nodeSlots.generation(slot);
      w[b + N.NAME_OFF] = nameOff;
      w[b + N.NAME_LEN] = nameLen;
      w[b + N.ADDR_OFF] = addrOff;
      w[b + N.ADDR_LEN] = addrLen;
      w[b + N.HTTP_PORT] = node.httpPort;
      w[b + N.DNS_PORT] = node.dnsPort;
      w[b + N.ICECAST_PORT] = node.icecastPort;
      w[b + N.ICECAST_INTERNAL_PORT] = node.icecastInternalPort;
      w[b + N.HTTPS_PORT] = node.httpsPort;
      w[b + N.FLAGS] = nf;
      w[b + N.LISTENERS] = node.listeners;
      w[b + N.BANDWIDTH_KBPS] = node.bandwidthKbps;
      w[b + N.MAX_LISTENERS] = node.maxListeners;
      w[b + N.BANDWIDTH_LIMIT_KBPS] = node.bandwidthLimitKbps;
      nodeHigh = Math.max(nodeHigh, slot + 1);
    }
    w[H.NODE_HIGH] = nodeHigh;

    w.fill(0, g.mountBase, g.mountBase + g.maxMounts * MOUNT_WORDS);
    w.fill(0, g.readyBase, g.readyBase + g.maxMounts * g.maskWords);
    let mountHigh = 0;
    for (const { slot, mount, info } of mounts) {
      const b = g.mountBase + slot * MOUNT_WORDS;
      const [pathOff, pathLen] = putString(mount.path);
      const [infoOff, infoLen] = putString(info);
      const fallback = mount.fallbackPath !== null ? slotByPath.get(mount.fallbackPath) : undefined;
      let mf = 0;
      if (mount.relay) mf |= MF_RELAY;
      if (mount.transcoded) mf |= MF_TRANSCODED;
      if (fallback !== undefined) mf |= MF_HAS_FALLBACK;
      if (mount.sourceConnected) mf |= MF_SOURCE_CONNECTED;
      w[b + M.USED] = 1;
      w[b + M.GENERATION] = this.#mountSlots.generation(slot);
      w[b + M.PATH_OFF] = pathOff;
      w[b + M.PATH_LEN] = pathLen;
      w[b + M.FLAGS] = mf;
      w[b + M.FALLBACK_SLOT] = fallback ?? -1;
      w[b + M.LISTENERS] = mount.listeners;
      w[b + M.KICKED_AT] = mount.kickedAt;
      w[b + M.INFO_OFF] = infoOff;
      w[b + M.INFO_LEN] = infoLen;
      // Zeros (no credential) unless a whole hash is given.
      const cred = Buffer.from(mount.credential, 'hex');
      if (cred.length === CREDENTIAL_BYTES) cred.copy(this.#raw, (b + M.CREDENTIAL) * 4);
      const rb = g.readyBase + slot * g.maskWords;
      for (const name of mount.readyOn) {
        const ns = slotByName.get(name);
        if (ns !== undefined) w[rb + (ns >> 5)]! |= 1 << (ns & 31);
      }
      mountHigh = Math.max(mountHigh, slot + 1);
    }
    w[H.MOUNT_HIGH] = mountHigh;
    w[H.STRINGS_USED] = off;

    Atomics.add(w, H.SEQ, 1); // even again: the snapshot is whole
    Atomics.notify(w, H.SEQ);
    return { seq: seq + 1, dropped, changed };
  }
}
