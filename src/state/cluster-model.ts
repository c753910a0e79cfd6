/**
 * The cluster as this node knows it, kept current from etcd: mounts, node
 * presence, node status and the master election's candidates. One prefix
 * watch covers everything. It starts from a full read and resumes from the
 * read's revision; when the watch is cancelled (a compacted revision) or
 * cannot be re-established, the model re-reads everything. While etcd is
 * unreachable the last known state stays in place. The tables and what
 * each event does to them are ClusterState's (cluster-state.ts).
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { PREFIX } from './keys.ts';
import { ClusterState } from './cluster-state.ts';

export type { ModelEvents, MountStatus, NodeInfo, NodeStatus } from './cluster-state.ts';

const log = logger('model');

export class ClusterModel extends ClusterState {
  loaded = false;
  /** Full re-reads done (the first load included). */
  reloads = 0;
  #client: Etcd3;
  #watcher: Watcher | null = null;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | null = null;
  #backoffMs = 250;
  /** Unix ms of the last message from etcd. */
  lastContact = 0;

  constructor(client: Etcd3) {
    super();
    this.#client = client;
  }

  async start(): Promise<void> {
    await this.#reload();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    const w = this.#watcher;
    this.#watcher = null;
    if (w) await w.cancel().catch(() => undefined);
  }

  #scheduleReload(why: string): void {
    if (this.#stopped || this.#retryTimer) return;
    log.warn(`re-reading cluster state in ${this.#backoffMs} ms: ${why}`);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#reload().catch(() => undefined);
    }, this.#backoffMs);
    this.#backoffMs = Math.min(this.#backoffMs * 2, 5000);
  }

  async #reload(): Promise<void> {
    const old = this.#watcher;
    this.#watcher = null;
    if (old) await old.cancel().catch(() => undefined);
    let revision: bigint;
    try {
      revision = await this.readOnce();
    } catch (err) {
      this.#scheduleReload(`etcd read failed: ${describe(err)}`);
      if (!this.loaded) throw err;
      return;
    }
    if (this.#stopped) return;
    this.#backoffMs = 250;
    const rev = revision + 1n;
    try {
      const w = await this.#client.watch().prefix(PREFIX).startRevision(rev.toString()).create();
      if (this.#stopped) {
        await w.cancel();
        return;
      }
      this.#watcher = w;
      w.on('put', (kv) => this.#apply(kv, false));
      w.on('delete', (kv) => this.#apply(kv, true));
      w.on('data', () => {
        this.lastContact = Date.now();
      });
      let up = true;
      w.on('connected', () => {
        // Not contact: a member cut off from its quorum still accepts a
        // reopened watch, and counting that would call a lost etcd present.
        if (!up) log.info('watch resumed');
        up = true;
        this.emit('connection', true);
      });
      w.on('disconnected', (err) => {
        // The client retries on its own; say so once per outage, not per attempt.
        if (up) log.warn(`watch disconnected, serving the last known state: ${describe(err)}`);
        up = false;
        this.emit('connection', false);
      });
      w.on('error', (err) => {
        // Cancelled by etcd, e.g. the revision was compacted: events may be lost, read everything again.
        if (this.#watcher === w) this.#scheduleReload(`watch cancelled: ${describe(err)}`);
      });
    } catch (err) {
      this.#scheduleReload(`watch failed: ${describe(err)}`);
    }
  }

  /** Reads the whole state once (no watch); returns the revision it reflects. */
  async readOnce(): Promise<bigint> {
    const res = await this.#client.getAll().prefix(PREFIX).exec();
    this.clear();
    for (const kv of res.kvs) this.#apply(kv, false);
    // Keys deleted while no watch ran: forget what was refused there.
    this.forgetRefusedExcept(new Set(res.kvs.map((kv) => kv.key.toString())));
    this.loaded = true;
    this.reloads++;
    this.lastContact = Date.now();
    this.changed();
    return BigInt(res.header.revision);
  }

  #apply(kv: IKeyValue, deleted: boolean): void {
    this.lastContact = Date.now();
    this.apply({ key: kv.key.toString(), value: deleted ? null : kv.value.toString(), createRevision: BigInt(kv.create_revision) });
  }
}
