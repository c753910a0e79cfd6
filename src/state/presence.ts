/**
 * Node presence: the node's key and its status live on one etcd lease of
 * LEASE_TTL seconds, kept alive by the client. When the node dies or loses
 * etcd for longer than the TTL, etcd deletes both keys and every other node
 * sees it leave. A lost lease (etcd was away too long) is replaced by a new
 * one and the keys are written again.
 */
import type { Etcd3, Lease } from 'etcd3';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import type { NodeInfo, NodeStatus } from './cluster-model.ts';
import { nodeKey, statusKey } from './keys.ts';

const log = logger('presence');

export class Presence {
  #client: Etcd3;
  #info: NodeInfo;
  #ttl: number;
  #lease: Lease | null = null;
  #status: NodeStatus | null = null;
  #stopped = false;
  #registering: Promise<void> | null = null;
  /** Unix ms of the last write or keepalive that etcd acknowledged. */
  lastAck = 0;
  /** Leases lost and replaced. */
  leasesLost = 0;

  constructor(client: Etcd3, info: NodeInfo, ttlSeconds: number) {
    this.#client = client;
    this.#info = info;
    this.#ttl = ttlSeconds;
  }

  get registered(): boolean {
    return this.#lease !== null && this.#registering === null;
  }

  /** Registers the node; retries until it succeeds or stop() is called. */
  start(): Promise<void> {
    return this.#register();
  }

  #register(): Promise<void> {
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
          await lease.put(nodeKey(this.#info.name)).value(JSON.stringify(this.#info));
          if (this.#status) await lease.put(statusKey(this.#info.name)).value(JSON.stringify(this.#status));
          this.#lease = lease;
          this.lastAck = Date.now();
          log.info(`registered ${this.#info.name} on lease ${await lease.grant()} (ttl ${this.#ttl} s)`);
          return;
        } catch (err) {
          lease.removeAllListeners('lost');
          await lease.revoke().catch(() => undefined);
          log.warn(`could not register with etcd, retrying in ${delay} ms: ${describe(err)}`);
          await new Promise((r) => setTimeout(r, delay));
          // Short: when etcd's quorum returns, the old lease lives on for about one TTL;
          // registering again before it expires keeps the node from dropping out.
          delay = Math.min(delay * 2, 1000);
        }
      }
    })().finally(() => {
      this.#registering = null;
    });
    return this.#registering;
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
