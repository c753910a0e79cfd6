/**
 * Node presence: the node's key and its status live on one etcd lease of
 * LEASE_TTL seconds, kept alive by the client. When the node dies or loses
 * etcd for longer than the TTL, etcd deletes both keys and every other node
 * sees it leave. A lost lease (etcd was away too long) is replaced by a new
 * one and the keys are written again.
 *
 * One node, one name: the node key is written in a transaction that only
 * succeeds while no other registration holds it. A key on one of this
 * process's own earlier leases (re-registration after a lost lease) or on
 * no lease at all (written by hand) is taken over. A key on another lease
 * is either a radiod that ended without revoking (its lease runs out within
 * its TTL) or a live node with the same name (its lease is kept alive):
 * presence waits one TTL of that lease to tell which, and refuses the
 * second case with RADIOAI_ERR_NAME_TAKEN, which ends a starting radiod.
 */
import type { Etcd3, IKeyValue, Lease } from 'etcd3';
import { RadioError, describe, hasCode } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import type { NodeInfo, NodeStatus } from './cluster-state.ts';
import { nodeKey, statusKey } from './keys.ts';
import { parseNodeInfo } from './node-record.ts';

const log = logger('presence');

/** Leases of this process that may still hold a key of its after being lost (the last few). */
export const OWN_LEASES = 4;
/** Beyond the holder's remaining TTL, how long a key may outlive a lease that is not kept alive. */
const EXPIRY_SLACK_MS = 2000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Who holds a node key, for the refusal line: its addresses and ports as its record says. */
export function describeHolder(kv: IKeyValue, name: string): string {
  try {
    const n = parseNodeInfo(name, JSON.parse(kv.value.toString()));
    return `addresses ${n.addresses.join(', ')}, HTTP port ${n.httpPort}, Icecast port ${n.icecastPort}, started ${n.startedAt || 'at an unknown time'}`;
  } catch {
    return 'a record that is not a valid node record';
  }
}

/**
 * What to do about the node key's current holder: take it over (one of our
 * own earlier leases, or no lease), or wait to see whether its lease runs out.
 */
export function holderVerdict(holderLease: string, ownLeases: ReadonlySet<string>): 'take-over' | 'wait' {
  return holderLease === '0' || ownLeases.has(holderLease) ? 'take-over' : 'wait';
}

/**
 * One transaction: puts `key` = `value` on lease `id` if the key is absent
 * (holder null) or still exactly `holder` (same modification; a key moved
 * so keeps its creation revision). Returns null when written, else the
 * key's current holder, or 'gone' when it vanished between.
 */
export async function putOnLease(client: Etcd3, key: string, value: string, id: string, holder: IKeyValue | null): Promise<IKeyValue | 'gone' | null> {
  const cond = holder === null ? client.if(key, 'Create', '==', 0) : client.if(key, 'Mod', '==', holder.mod_revision);
  const res = await cond.then(client.put(key).value(value).lease(id)).else(client.get(key)).commit();
  if (res.succeeded) return null;
  return res.responses[0]?.response_range?.kvs[0] ?? 'gone';
}

export class Presence {
  #client: Etcd3;
  #info: NodeInfo;
  #ttl: number;
  #lease: Lease | null = null;
  /** IDs of leases this process was granted, newest last. */
  #ownLeases: string[] = [];
  #status: NodeStatus | null = null;
  #stopped = false;
  #registering: Promise<void> | null = null;
  #firstRegistration: () => void = () => undefined;
  /** Resolves when the node has registered for the first time. */
  readonly firstRegistration: Promise<void>;
  /** Unix ms of the last write or keepalive that etcd acknowledged. */
  lastAck = 0;
  /** Leases lost and replaced. */
  leasesLost = 0;

  constructor(client: Etcd3, info: NodeInfo, ttlSeconds: number) {
    this.#client = client;
    this.#info = info;
    this.#ttl = ttlSeconds;
    this.firstRegistration = new Promise((r) => (this.#firstRegistration = r));
  }

  /** The lease the node's keys are on, while registered. */
  get leaseId(): string | null {
    return this.registered ? (this.#ownLeases[this.#ownLeases.length - 1] ?? null) : null;
  }

  get registered(): boolean {
    return this.#lease !== null && this.#registering === null;
  }

  /**
   * Registers the node and keeps trying in the background until it succeeds
   * or stop() is called. Resolves once registered, or as soon as an attempt
   * fails because etcd does not answer (the retries go on); rejects with
   * RADIOAI_ERR_NAME_TAKEN when another live node holds this node's name.
   */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      void this.#register({ resolve, reject });
    });
  }

  #register(first?: { resolve: () => void; reject: (err: unknown) => void }): Promise<void> {
    if (this.#registering) return this.#registering;
    this.#registering = (async () => {
      let delay = 250;
      while (!this.#stopped) {
        const lease = this.#client.lease(this.#ttl, { autoKeepAlive: true });
        lease.on('lost', (err) => this.#onLost(lease, err));
        lease.on('keepaliveSucceeded', () => {
          this.lastAck = Date.now();
        });
        try {
          const id = await lease.grant();
          this.#ownLeases = [...this.#ownLeases, id].slice(-OWN_LEASES);
          if (!(await this.#claim(id))) break;
          if (this.#status) await lease.put(statusKey(this.#info.name)).value(JSON.stringify(this.#status));
          this.#lease = lease;
          this.lastAck = Date.now();
          log.info(`registered ${this.#info.name} on lease ${id} (ttl ${this.#ttl} s)`);
          this.#firstRegistration();
          first?.resolve();
          return;
        } catch (err) {
          lease.removeAllListeners('lost');
          await lease.revoke().catch(() => undefined);
          if (hasCode(err, 'RADIOAI_ERR_NAME_TAKEN')) {
            if (first) {
              // A starting radiod with a name in use must not run at all.
              this.#stopped = true;
              first.reject(err);
              return;
            }
            // Running already (the lease was lost meanwhile): keep serving unregistered and look again later.
            log.error(`${describe(err)}; trying again in 5 s`);
            await sleep(5000);
            continue;
          }
          first?.resolve();
          first = undefined;
          log.warn(`could not register with etcd, retrying in ${delay} ms: ${describe(err)}`);
          await sleep(delay);
          // Short: when etcd's quorum returns, the old lease lives on for about one TTL;
          // registering again before it expires keeps the node from dropping out.
          delay = Math.min(delay * 2, 1000);
        }
      }
      first?.resolve();
    })().finally(() => {
      this.#registering = null;
    });
    return this.#registering;
  }

  /**
   * Writes the node key on lease `id` unless another live node holds it.
   * Returns false when stopped meanwhile; throws RADIOAI_ERR_NAME_TAKEN.
   */
  async #claim(id: string): Promise<boolean> {
    const name = this.#info.name;
    let watching = null as { lease: string; until: number } | null;
    while (!this.#stopped) {
      const holder = await this.#putIf(id, null);
      if (holder === null) return true;
      if (holder === 'gone') continue;
      const holderLease = String(holder.lease);
      if (holderVerdict(holderLease, new Set(this.#ownLeases)) === 'take-over') {
        if (holderLease === '0') log.warn(`replacing ${nodeKey(name)}, which was written without a lease (not by a running radiod)`);
        if ((await this.#putIf(id, holder)) === null) return true;
        continue;
      }
      const res = await this.#client.leaseClient.leaseTimeToLive({ ID: holderLease });
      const remaining = Number(res.TTL);
      if (!(remaining > 0)) {
        // Expired: etcd is deleting the key.
        await sleep(250);
        continue;
      }
      const now = Date.now();
      if (watching?.lease !== holderLease) {
        watching = { lease: holderLease, until: now + remaining * 1000 + EXPIRY_SLACK_MS };
        log.warn(`node name ${name} is registered on another lease (${describeHolder(holder, name)}); waiting up to ${Math.ceil((watching.until - now) / 1000)} s to see whether it expires`);
      } else if (now >= watching.until) {
        // The lease outlived its TTL: something keeps it alive, so a live node has this name.
        throw new RadioError('RADIOAI_ERR_NAME_TAKEN', `node name ${name} is taken by another live node (${describeHolder(holder, name)}); give this node another NODE_NAME or stop the other one`);
      }
      await sleep(500);
    }
    return false;
  }

  #putIf(id: string, holder: IKeyValue | null): Promise<IKeyValue | 'gone' | null> {
    return putOnLease(this.#client, nodeKey(this.#info.name), JSON.stringify(this.#info), id, holder);
  }

  #onLost(lease: Lease, err: Error): void {
    if (this.#stopped || lease !== this.#lease) return;
    this.leasesLost++;
    this.#lease = null;
    log.warn(`lease lost (${describe(err)}); registering again`);
    void this.#register();
  }

  /** Writes the node status under the lease. Callers throttle to once a second. */
  async writeStatus(status: NodeStatus): Promise<boolean> {
    this.#status = status;
    const lease = this.#lease;
    if (!lease || this.#registering) return false;
    try {
      await lease.put(statusKey(this.#info.name)).value(JSON.stringify(status));
      this.lastAck = Date.now();
      return true;
    } catch {
      return false;
    }
  }

  /** Leaves the cluster at once (revokes the lease) instead of waiting for the TTL. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const lease = this.#lease;
    this.#lease = null;
    if (lease) {
      lease.removeAllListeners('lost');
      await lease.revoke().catch(() => undefined);
    }
  }
}
