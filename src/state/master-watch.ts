/**
 * Faster than a lease: a master whose process has died is noticed by the
 * other nodes within half a second, not when its lease runs out (up to
 * LEASE_TTL after its last keepalive, three seconds by default).
 *
 * Every node other than the master connects to the master's public HTTP
 * port and its Icecast every PROBE_MS. When both refuse (or neither answers
 * within PROBE_TIMEOUT_MS) twice in a row, the node says so in etcd
 * (`suspect/<master>/<node>`, on its own lease). Once every live node other
 * than the master says so, the one that sees it revokes the master's lease:
 * etcd deletes its keys (presence, status, candidacies) and the next
 * candidate is master at once, as it would be when the lease expired.
 *
 * Why both ports and every node: one port refusing is a worker being
 * replaced or an Icecast being restarted by a live radiod; one node failing
 * to connect is that node's own trouble. A master that none of the others
 * can reach serves nobody, since every source and relay goes through it:
 * even when it still talks to etcd, handing its place on is right. A host
 * that vanishes without a word (power lost) is found the same way, by
 * connection attempts that time out, in about two seconds.
 */
import type { Etcd3 } from 'etcd3';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { reachable } from './etcd-probe.ts';
import { MASTER_ELECTION_PREFIX, PREFIX } from './keys.ts';

const log = logger('master-watch');

export const PROBE_MS = 250;
export const PROBE_TIMEOUT_MS = 1000;
/** Failed probes in a row before a node suspects the master. */
export const FAILURES_TO_SUSPECT = 2;

export const SUSPECT = `${PREFIX}suspect/`;
export const suspectKey = (master: string, node: string): string => `${SUSPECT}${master}/${node}`;

export interface MasterAddress {
  name: string;
  host: string;
  httpPort: number;
  icecastPort: number;
}

/**
 * Whether the master is to be taken as dead: every voter (each live node
 * but the master) suspects it, and there is at least one.
 */
export function masterDead(suspecting: ReadonlySet<string>, voters: readonly string[]): boolean {
  return voters.length > 0 && voters.every((v) => suspecting.has(v));
}

export interface MasterWatchOptions {
  client: Etcd3;
  self: string;
  /** The master as this node sees it, unless it is this node. */
  master: () => MasterAddress | null;
  /** Live nodes other than `master` (this one among them). */
  voters: (master: string) => string[];
  /** This node's own lease, for its suspicion key; null while not registered. */
  leaseId: () => string | null;
  /** Whether etcd answers this node now (a cut-off node decides nothing). */
  connected: () => boolean;
}

export class MasterWatch {
  readonly #o: MasterWatchOptions;
  readonly #timer: NodeJS.Timeout;
  #busy = false;
  #failures = 0;
  /** The master this node's suspicion key names, if it wrote one. */
  #suspected: string | null = null;
  /** The last master whose lease was revoked here: done with it. */
  #revoked: string | null = null;
  /** Leases revoked because every other node found the master dead. */
  revocations = 0;

  constructor(o: MasterWatchOptions) {
    this.#o = o;
    this.#timer = setInterval(() => void this.#tick(), PROBE_MS);
  }

  async #tick(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      await this.#check();
    } catch (err) {
      log.debug(`master check failed: ${describe(err)}`);
    } finally {
      this.#busy = false;
    }
  }

  async #check(): Promise<void> {
    const m = this.#o.master();
    if (this.#revoked !== null && this.#revoked !== m?.name) this.#revoked = null;
    if (this.#suspected !== null && this.#suspected !== m?.name) await this.#withdraw();
    if (m === null || !this.#o.connected() || m.name === this.#revoked) {
      this.#failures = 0;
      return;
    }
    const probes = [m.httpPort, m.icecastPort].map((port) => reachable({ url: '', host: m.host, port }, PROBE_TIMEOUT_MS));
    if ((await Promise.all(probes)).some(Boolean)) {
      this.#failures = 0;
      if (this.#suspected !== null) await this.#withdraw();
      return;
    }
    if (++this.#failures < FAILURES_TO_SUSPECT) return;
    const lease = this.#o.leaseId();
    if (lease === null) return;
    const client = this.#o.client;
    if (this.#suspected !== m.name) {
      await client.put(suspectKey(m.name, this.#o.self)).value(String(Date.now())).lease(lease);
      this.#suspected = m.name;
      log.warn(`master ${m.name} refuses connections at ${m.host} (ports ${m.httpPort} and ${m.icecastPort})`);
    }
    const keys = await client.getAll().prefix(`${SUSPECT}${m.name}/`).keys();
    const suspecting = new Set(keys.map((k) => k.slice(`${SUSPECT}${m.name}/`.length)));
    const voters = this.#o.voters(m.name);
    if (!masterDead(suspecting, voters)) return;
    const kv = (await client.get(`${MASTER_ELECTION_PREFIX}${m.name}`).exec()).kvs[0];
    this.#revoked = m.name;
    if (!kv || String(kv.lease) === '0') return;
    await client.leaseClient.leaseRevoke({ ID: kv.lease });
    this.revocations++;
    log.warn(`master ${m.name} is dead for ${voters.join(', ')}: revoked its lease, the next candidate takes over`);
  }

  async #withdraw(): Promise<void> {
    const was = this.#suspected;
    this.#suspected = null;
    if (was !== null) await this.#o.client.delete().key(suspectKey(was, this.#o.self)).exec();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Removes this node's suspicion key, if any (a stopping node revokes its lease anyway). */
  async close(): Promise<void> {
    this.stop();
    await this.#withdraw().catch(() => undefined);
  }
}
