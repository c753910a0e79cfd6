/**
 * Keeps this node in one etcd election: the master election (every node) or
 * the election of a transcoding mount. Candidate keys live on a lease of
 * LEASE_TTL seconds; the candidate with the oldest key wins. A dead winner's
 * key expires with its lease and the next candidate takes over. A campaign
 * error (its lease was lost) means this node may no longer be the winner:
 * stop acting as one and campaign again.
 *
 * Who won is read from the model (cluster-model.ts), which sees the same
 * keys through its watch; this class only keeps the node in the race.
 */
import { EventEmitter } from 'node:events';
import type { Campaign, Etcd3 } from 'etcd3';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { PREFIX } from './keys.ts';

const log = logger('election');

export interface ElectionEvents {
  elected: [];
  /** This node's campaign failed; it is not master until elected again. */
  deposed: [];
}

export class Campaigner extends EventEmitter<ElectionEvents> {
  #client: Etcd3;
  #election: string;
  #name: string;
  #ttl: number;
  #campaign: Campaign | null = null;
  #stopped = false;
  #retry: NodeJS.Timeout | null = null;
  elected = false;

  constructor(client: Etcd3, election: string, nodeName: string, ttlSeconds: number) {
    super();
    this.#client = client;
    this.#election = election;
    this.#name = nodeName;
    this.#ttl = ttlSeconds;
  }

  start(): void {
    if (this.#stopped || this.#campaign) return;
    const campaign = this.#client.namespace(PREFIX).election(this.#election, this.#ttl).campaign(this.#name);
    this.#campaign = campaign;
    campaign.on('elected', () => {
      if (this.#campaign !== campaign) return;
      this.elected = true;
      log.debug(`${this.#name} won ${this.#election}`);
      this.emit('elected');
    });
    campaign.on('error', (err) => {
      if (this.#campaign !== campaign) return;
      this.#campaign = null;
      if (this.elected) {
        this.elected = false;
        this.emit('deposed');
      }
      if (this.#stopped) return;
      log.warn(`campaign in ${this.#election} failed, campaigning again in 1 s: ${describe(err)}`);
      campaign.removeAllListeners();
      campaign.on('error', () => undefined);
      this.#retry = setTimeout(() => {
        this.#retry = null;
        this.start();
      }, 1000);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
    const c = this.#campaign;
    this.#campaign = null;
    this.elected = false;
    if (c) {
      c.removeAllListeners();
      c.on('error', () => undefined);
      await c.resign().catch(() => undefined);
    }
  }
}
