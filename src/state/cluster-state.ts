/**
 * The cluster's state as etcd holds it, in tables: mounts, node presence,
 * node status and the election candidates. `apply()` takes one key's new
 * value (or its deletion) and keeps what it refuses out of the tables, so
 * that nothing derived from them ever sees a malformed record. It knows
 * nothing of how the events arrive: the model (cluster-model.ts) feeds it
 * from an etcd watch, the unit tests from a script.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { ELECTIONS, MASTER_ELECTION, MOUNTS, NODES, STATUS } from './keys.ts';
import { parseMountRecord, type MountRecord } from './mount-record.ts';
import { isNodeName, parseNodeInfo, parseNodeStatus } from './node-record.ts';
import type { LiveInfo } from '../icecast/icecast-stats.ts';

/** What a node says about itself on its lease. */
export interface NodeInfo {
  name: string;
  addresses: string[];
  httpPort: number;
  dnsPort: number;
  icecastPort: number;
  /** Port of the node's own Icecast server (the address is the first of `addresses`). */
  icecastInternalPort: number;
  proxy: boolean;
  maxListeners: number;
  /** bits/s, 0 = unlimited */
  bandwidthLimit: number;
  version: string;
  startedAt: string;
}

export interface MountStatus {
  /** The mount has its source (master) or its relay is up (other nodes). */
  ready: boolean;
  source: boolean;
  listeners: number;
  /** The live stream's description, reported by the node whose Icecast holds the source. */
  info?: LiveInfo;
}

/** What a node reports about its load, at most once a second, on its lease. */
export interface NodeStatus {
  listeners: number;
  /** Measured outbound bits/s. */
  bandwidth: number;
  icecastReady: boolean;
  /** This node runs an etcd member that answers. */
  etcdMember: boolean;
  /**
   * The node answers on its public port (its own probe, listen-check.ts).
   * false takes it out of DNS and balancing; absent (older nodes) counts as true.
   */
  serving?: boolean;
  /** HTTPS_PORT while the node serves HTTPS; absent or 0 when it does not. */
  httpsPort?: number;
  mounts: Record<string, MountStatus>;
  updatedAt: string;
}

export interface ModelEvents {
  change: [];
  connection: [connected: boolean];
}

/** One key's event: its value, or null when it was deleted. */
export interface KeyEvent {
  key: string;
  value: string | null;
  /** etcd's creation revision of the key (orders election candidates). */
  createRevision: bigint;
}

const log = logger('model');

export class ClusterState extends EventEmitter<ModelEvents> {
  readonly mounts = new Map<string, MountRecord>();
  readonly nodes = new Map<string, NodeInfo>();
  readonly status = new Map<string, NodeStatus>();
  /** Election candidate keys: key -> election name, candidate value and creation revision. */
  readonly candidates = new Map<string, { election: string; value: string; createRevision: bigint }>();
  /** Digest of the value last refused at each key (one entry per refused key present in etcd). */
  readonly #refused = new Map<string, string>();
  #pendingEmit = false;

  /** A mount's state across the cluster, from every node's status. */
  mountSummary(path: string): { listeners: number; source: boolean; readyOn: string[]; info: LiveInfo | null } {
    let listeners = 0;
    let source = false;
    let info: LiveInfo | null = null;
    const readyOn: string[] = [];
    for (const [name, s] of this.status) {
      const ms = s.mounts?.[path];
      if (!ms) continue;
      listeners += ms.listeners;
      source ||= ms.source;
      if (ms.ready) readyOn.push(name);
      if (ms.info && (info === null || ms.source)) info = ms.info;
    }
    return { listeners, source, readyOn: readyOn.sort(), info };
  }

  /** The winner of an election: the candidate with the lowest creation revision (etcd's election rule). */
  leader(election: string): string | null {
    let best: { value: string; createRevision: bigint } | null = null;
    for (const c of this.candidates.values()) {
      if (c.election === election && (!best || c.createRevision < best.createRevision)) best = c;
    }
    return best?.value ?? null;
  }

  master(): string | null {
    return this.leader(MASTER_ELECTION);
  }

  /** The master election's candidates, oldest (the winner) first. */
  masterCandidates(): string[] {
    return [...this.candidates.values()]
      .filter((c) => c.election === MASTER_ELECTION)
      .sort((a, b) => (a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0))
      .map((c) => c.value);
  }

  /** Forgets everything before a full read. */
  protected clear(): void {
    this.mounts.clear();
    this.nodes.clear();
    this.status.clear();
    this.candidates.clear();
  }

  /** After a full read: forgets what was refused at keys no longer present. */
  protected forgetRefusedExcept(present: Set<string>): void {
    for (const key of this.#refused.keys()) if (!present.has(key)) this.#refused.delete(key);
  }

  /** Emits one `change` for the changes of this turn of the event loop. */
  protected changed(): void {
    if (this.#pendingEmit) return;
    this.#pendingEmit = true;
    queueMicrotask(() => {
      this.#pendingEmit = false;
      this.emit('change');
    });
  }

  /** Applies one key's event. */
  apply(e: KeyEvent): void {
    const key = e.key;
    let kind: 'mount' | 'node' | 'status' | 'candidate';
    let name: string;
    if (key.startsWith(MOUNTS)) [kind, name] = ['mount', `/${key.slice(MOUNTS.length)}`];
    else if (key.startsWith(NODES)) [kind, name] = ['node', key.slice(NODES.length)];
    else if (key.startsWith(STATUS)) [kind, name] = ['status', key.slice(STATUS.length)];
    else if (key.startsWith(ELECTIONS)) [kind, name] = ['candidate', key];
    else return;
    const table = { mount: this.mounts, node: this.nodes, status: this.status, candidate: this.candidates }[kind] as Map<string, unknown>;
    if (e.value === null) {
      this.#refused.delete(key);
      if (!table.delete(name)) return;
      this.changed();
      return;
    }
    const raw = e.value;
    let value: unknown;
    try {
      value = parseRecord(kind, name, raw, e.createRevision);
    } catch (err) {
      // Refused: treated as absent, so nothing derived from it (DNS, redirects, hubs,
      // Icecast, liquidsoap) ever sees it; said once per key and value, not per event or re-read.
      const digest = createHash('sha256').update(raw).digest('base64');
      if (this.#refused.get(key) !== digest) {
        this.#refused.set(key, digest);
        log.error(`ignoring invalid record ${printable(key)}: ${printable(describe(err))}`);
      }
      if (table.delete(name)) this.changed();
      return;
    }
    this.#refused.delete(key);
    table.set(name, value);
    this.changed();
  }
}

/** Decodes and validates one value of the model's tables; throws when it is not acceptable. */
function parseRecord(kind: 'mount' | 'node' | 'status' | 'candidate', name: string, raw: string, createRevision: bigint): unknown {
  switch (kind) {
    case 'mount': {
      const m = parseMountRecord(JSON.parse(raw));
      if (m.path !== name) throw new Error(`the record's path ${JSON.stringify(m.path)} differs from its key's`);
      return m;
    }
    case 'node':
      return parseNodeInfo(name, JSON.parse(raw));
    case 'status':
      return parseNodeStatus(name, JSON.parse(raw));
    case 'candidate': {
      // A candidate's value is a node name: the master is looked up by it and shown to clients.
      if (!isNodeName(raw)) throw new Error(`candidate ${JSON.stringify(raw.slice(0, 80))} is not a node name`);
      const election = name.slice(ELECTIONS.length, name.lastIndexOf('/'));
      return { election, value: raw, createRevision };
    }
  }
}

/** A log-safe rendering of text from etcd: one line, bounded. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  const one = s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return one.length > 300 ? `${one.slice(0, 297)}...` : one;
}
