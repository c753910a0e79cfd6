/**
 * Faster than a lease: a node whose process has died is noticed by the
 * other nodes within half a second, not when its leases run out (up to
 * LEASE_TTL after the last keepalive, three seconds by default). For the
 * master that is the difference between a second of silence and three.
 *
 * Every node connects to every other node's public HTTP port and its
 * Icecast every PROBE_MS. When both refuse (or neither answers within
 * PROBE_TIMEOUT_MS) twice in a row, the node says so in etcd
 * (`suspect/<node>/<prober>`, on its own lease). Once every other live node
 * says so, the one that sees it revokes the dead node's leases (presence,
 * master candidacy, transcoder candidacies): etcd deletes its keys as if
 * they had expired, so it leaves DNS and the choices, and the next
 * candidate is master at once.
 *
 * Why both ports and every node: one port refusing is a worker being
 * replaced or an Icecast being restarted by a live radiod; one node failing
 * to connect is that node's own trouble. A node that none of the others
 * can reach is of no use to the cluster (a master serves nobody: every
 * source and relay goes through it), so handing its place on is right even
 * when it still talks to etcd. A host that vanishes without a word (power
 * lost) is found the same way, by connection attempts that time out, or by
 * its leases, whichever comes first. Two nodes dying together wait for
 * their leases: each is a voter the other's verdict needs.
 */
import type { Etcd3 } from 'etcd3';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { reachable } from './etcd-probe.ts';
import { ELECTIONS, PREFIX, nodeKey } from './keys.ts';

const log = logger('peer-watch');

export const PROBE_MS = 250;
export const PROBE_TIMEOUT_MS = 1000;
/** Failed probes in a row before a node suspects another. */
export const FAILURES_TO_SUSPECT = 2;

export const SUSPECT = `${PREFIX}suspect/`;
export const suspectKey = (node: string, by: string): string => `${SUSPECT}${node}/${by}`;

export interface PeerAddress {
  name: string;
  host: string;
  httpPort: number;
  icecastPort: number;
}

/**
 * Whether a node is to be taken as dead: every voter (each live node but
 * the suspect) suspects it, and there is at least one.
 */
export function peerDead(suspecting: ReadonlySet<string>, voters: readonly string[]): boolean {
  return voters.length > 0 && voters.every((v) => suspecting.has(v));
}

export interface PeerWatchOptions {
  client: Etcd3;
  self: string;
  /** The other live nodes, as this node sees them. */
  peers: () => PeerAddress[];
  /** Live nodes other than `suspect` (this one among them). */
  voters: (suspect: string) => string[];
  /** This node's own lease, for its suspicion keys; null while not registered. */
  leaseId: () => string | null;
  /** Whether etcd answers this node now and it is in service (a cut-off node decides nothing). */
  connected: () => boolean;
}

export class PeerWatch {
  readonly #o: PeerWatchOptions;
  readonly #timer: NodeJS.Timeout;
  #busy = false;
  /** Failed probes in a row, per peer. */
  readonly #failures = new Map<string, number>();
  /** Peers this node's suspicion keys name. */
  readonly #suspected = new Set<string>();
  /** Peers whose leases were revoked here and that have not come back since. */
  readonly #revoked = new Set<string>();
  /** Nodes whose leases were revoked because every other node found them dead. */
  revocations = 0;

  constructor(o: PeerWatchOptions) {
    this.#o = o;
    this.#timer = setInterval(() => void this.#tick(), PROBE_MS);
  }

  async #tick(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      await this.#check();
    } catch (err) {
      log.debug(`peer check failed: ${describe(err)}`);
    } finally {
      this.#busy = false;
    }
  }

  async #check(): Promise<void> {
    const peers = this.#o.peers();
    const names = new Set(peers.map((p) => p.name));
    // Gone from the cluster (revoked, expired or left): nothing more to say about them.
    for (const name of [...this.#suspected]) if (!names.has(name)) await this.#withdraw(name);
    for (const name of [...this.#failures.keys()]) if (!names.has(name)) this.#failures.delete(name);
    for (const name of [...this.#revoked]) if (!names.has(name)) this.#revoked.delete(name);
    if (!this.#o.connected()) {
      this.#failures.clear();
      return;
    }
    await Promise.all(peers.map((p) => this.#probe(p)));
  }

  async #probe(p: PeerAddress): Promise<void> {
    if (this.#revoked.has(p.name)) return;
    const probes = [p.httpPort, p.icecastPort].map((port) => reachable({ url: '', host: p.host, port }, PROBE_TIMEOUT_MS));
    if ((await Promise.all(probes)).some(Boolean)) {
      this.#failures.delete(p.name);
      if (this.#suspected.has(p.name)) await this.#withdraw(p.name);
      return;
    }
    const failures = (this.#failures.get(p.name) ?? 0) + 1;
    this.#failures.set(p.name, failures);
    if (failures < FAILURES_TO_SUSPECT) return;
    const lease = this.#o.leaseId();
    if (lease === null) return;
    const client = this.#o.client;
    if (!this.#suspected.has(p.name)) {
      await client.put(suspectKey(p.name, this.#o.self)).value(String(Date.now())).lease(lease);
      this.#suspected.add(p.name);
      log.warn(`node ${p.name} refuses connections at ${p.host} (ports ${p.httpPort} and ${p.icecastPort})`);
    }
    const prefix = `${SUSPECT}${p.name}/`;
    const suspecting = new Set((await client.getAll().prefix(prefix).keys()).map((k) => k.slice(prefix.length)));
    const voters = this.#o.voters(p.name);
    if (!peerDead(suspecting, voters)) return;
    this.#revoked.add(p.name);
    const leases = await leasesOf(client, p.name);
    await Promise.all([...leases].map((ID) => client.leaseClient.leaseRevoke({ ID })));
    this.revocations++;
    log.warn(`node ${p.name} is dead for ${voters.join(', ')}: revoked its lease${leases.size === 1 ? '' : 's'}, its keys are gone`);
  }

  async #withdraw(name: string): Promise<void> {
    this.#suspected.delete(name);
    await this.#o.client.delete().key(suspectKey(name, this.#o.self)).exec();
  }

  /** Stops probing and removes this node's suspicion keys (a stopping node revokes its lease anyway). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all([...this.#suspected].map((n) => this.#withdraw(n).catch(() => undefined)));
  }
}

/** The leases that hold `name`'s keys: its node key, and its candidacies in every election. */
async function leasesOf(client: Etcd3, name: string): Promise<Set<string>> {
  const [node, candidacies] = await Promise.all([
    client.get(nodeKey(name)).exec(),
    client.getAll().prefix(ELECTIONS).exec(),
  ]);
  const kvs = [...node.kvs, ...candidacies.kvs.filter((kv) => kv.key.toString().endsWith(`/${name}`))];
  return new Set(kvs.map((kv) => String(kv.lease)).filter((l) => l !== '0'));
}
