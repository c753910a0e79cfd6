/**
 * Keeps this node in one etcd election: the master election (every node) or
 * the election of a transcoding mount. Each candidate has one key,
 * `election/<election>/<node name>`, on a lease of LEASE_TTL seconds; the
 * candidate whose key was created first wins (the model reads the keys'
 * creation revisions, cluster-model.ts). A dead winner's key expires with
 * its lease and the next candidate takes over.
 *
 * Why not etcd3's own Election: its key is named after the lease, so a
 * candidate whose lease the client gave up on (etcd without a quorum for
 * longer than twice the TTL) comes back with a new key, last in line, and
 * the master moves once the old keys expire, though nothing died. etcd
 * cannot expire a lease without a quorum, and a new leader gives every
 * lease a fresh TTL, so the old key is still there when the quorum
 * returns: this campaigner moves that key onto a new lease in one
 * transaction, which keeps its creation revision and so its place.
 */
import type { Etcd3, Lease } from 'etcd3';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { ELECTIONS } from './keys.ts';
import { OWN_LEASES, holderVerdict, putOnLease } from './presence.ts';

const log = logger('election');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A candidate's key in `election`. */
export const candidateKey = (election: string, nodeName: string): string => `${ELECTIONS}${election}/${nodeName}`;

export class Campaigner {
  readonly #client: Etcd3;
  readonly #election: string;
  readonly #name: string;
  readonly #ttl: number;
  readonly #key: string;
  #lease: Lease | null = null;
  #own: string[] = [];
  #standing: Promise<void> | null = null;
  #stopped = false;
  /** Unix ms of the last keepalive etcd acknowledged for the candidate's lease. */
  lastAck = 0;

  constructor(client: Etcd3, election: string, nodeName: string, ttlSeconds: number) {
    this.#client = client;
    this.#election = election;
    this.#name = nodeName;
    this.#ttl = ttlSeconds;
    this.#key = candidateKey(election, nodeName);
  }

  /** Stands in the election, and keeps trying in the background until it does or stop() is called. */
  start(): void {
    if (this.#stopped || this.#lease || this.#standing) return;
    this.#standing = this.#stand().finally(() => {
      this.#standing = null;
    });
  }

  async #stand(): Promise<void> {
    let delay = 250;
    while (!this.#stopped) {
      const lease = this.#client.lease(this.#ttl, { autoKeepAlive: true });
      lease.on('lost', (err) => this.#lost(lease, err));
      lease.on('keepaliveSucceeded', () => {
        this.lastAck = Date.now();
      });
      try {
        const id = await lease.grant();
        this.#own = [...this.#own, id].slice(-OWN_LEASES);
        if ((await this.#claim(id)) && !this.#stopped) {
          this.#lease = lease;
          this.lastAck = Date.now();
          return;
        }
      } catch (err) {
        log.warn(`could not stand in ${this.#election}, trying again in ${delay} ms: ${describe(err)}`);
      }
      lease.removeAllListeners('lost');
      await lease.revoke().catch(() => undefined);
      if (this.#stopped) return;
      await sleep(delay);
      // Short: the old key lives on for about one TTL after etcd's quorum returns.
      delay = Math.min(delay * 2, 1000);
    }
  }

  /**
   * Puts the candidate key on lease `id`: a new key when there is none, or
   * this campaign's key of an earlier lease moved over (its place kept). A
   * key on a lease of another process (this node's radiod before a restart)
   * is waited out. Returns false when stopped meanwhile.
   */
  async #claim(id: string): Promise<boolean> {
    while (!this.#stopped) {
      const holder = await putOnLease(this.#client, this.#key, this.#name, id, null);
      if (holder === null) return true;
      if (holder === 'gone') continue;
      if (holderVerdict(String(holder.lease), new Set(this.#own)) === 'take-over') {
        if ((await putOnLease(this.#client, this.#key, this.#name, id, holder)) === null) {
          log.info(`kept this node's place in ${this.#election} on a new lease`);
          return true;
        }
        continue;
      }
      await sleep(500);
    }
    return false;
  }

  #lost(lease: Lease, err: Error): void {
    if (this.#stopped || lease !== this.#lease) return;
    this.#lease = null;
    log.warn(`lease of this node's candidacy in ${this.#election} lost (${describe(err)}); standing again`);
    this.start();
  }

  /** Leaves the election at once (revokes the lease, which deletes the key). */
  async stop(): Promise<void> {
    this.#stopped = true;
    const lease = this.#lease;
    this.#lease = null;
    // A campaign still standing revokes its own lease when it sees the stop.
    if (lease) {
      lease.removeAllListeners('lost');
      await lease.revoke().catch(() => undefined);
    }
  }
}
