/**
 * Is etcd there, and is this node cut off? One policy, asked once a tick
 * (and four times a second while etcd is silent):
 *
 * - connected: etcd answered this node (a watch event, a lease keep-alive)
 *   within ETCD_SILENCE_MS;
 * - reachable: while it has not, does any member accept a TCP connection?
 *   A cut-off node stops its transcoders before another node's start
 *   (transcoders.ts), so this is asked every QUICK_MS;
 * - out of service: no member has answered for a whole lease TTL (the other
 *   nodes have dropped this one by now) and other nodes exist to take its
 *   listeners. A cluster whose etcd lost its quorum is different: members
 *   still answer, every node is in the same state, and each keeps serving.
 *
 * It also connects at start (a host-name ETCD_SERVER that does not resolve
 * yet is asked again, never fatal), waits for an embedded etcd to elect
 * itself, asks whether this node's own member is healthy (for etcd.DOMAIN),
 * and says once per outage why etcd refuses when an operator can fix it.
 */
import type { Etcd3 } from 'etcd3';
import type { Config } from '../config/settings.ts';
import { RadioError, describe, hasCode } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { connectEtcd, loadTls, withDeadline, type Tls } from '../state/etcd-client.ts';
import { diagnoseEtcd } from '../state/etcd-diagnose.ts';
import { memberHealthy, parseEndpoint, reachable, type Endpoint, type ProbeTls } from '../state/etcd-probe.ts';

const log = logger('radiod');

/** etcd counts as unreachable after this long without an answer. */
export const ETCD_SILENCE_MS = 3000;
/** Past this long without etcd, whether any member answers at all is asked every QUICK_MS. */
const QUICK_AFTER_MS = 1000;
const QUICK_MS = 250;
/** A member on the same network answers a TCP connect within milliseconds. */
const REACHABLE_MS = 500;
/** Ticks without etcd before the reason is looked for (a TLS or address mistake). */
const EXPLAIN_AFTER_TICKS = 3;
/** Deadline of a single unary etcd call, so a dead etcd cannot pile up requests. */
const ETCD_CALL_MS = 3000;
const RESOLVE_RETRY_MS = 2000;

/** Whether etcd answered recently enough to count as there. */
export function etcdConnected(lastSeen: number, now: number): boolean {
  return now - lastSeen < ETCD_SILENCE_MS;
}

/** The out-of-service rule (above): cut off for a lease TTL, with other nodes to take the listeners. */
export function outOfService(o: { connected: boolean; reachable: boolean; silentMs: number; leaseTtlS: number; others: boolean }): boolean {
  return !o.connected && !o.reachable && o.silentMs >= o.leaseTtlS * 1000 && o.others;
}

export interface EtcdWatchOptions {
  config: Config;
  /** Unix ms of the last answer from etcd (the model's watch, the lease's keep-alive). */
  lastSeen: () => number;
  /** Other nodes are known. */
  others: () => boolean;
  /** Called after each reachability answer while etcd is silent (the transcoders act on it). */
  onReachability: () => void;
  /** radiod is stopping: stop asking. */
  draining: () => boolean;
}

export class EtcdWatch {
  readonly #o: EtcdWatchOptions;
  #endpoints: Endpoint[] = [];
  #probeTls: ProbeTls | null = null;
  #connected = false;
  #silentTicks = 0;
  #ticks = 0;
  #probing = false;
  #probingReachable = false;
  #quick: NodeJS.Timeout | null = null;
  /** Some member accepted a TCP connection at the last look. */
  reachable = true;
  /** The member on this node's own address reported itself healthy. */
  localMember = false;
  outOfService = false;

  constructor(o: EtcdWatchOptions) {
    this.#o = o;
  }

  /** etcd answered within ETCD_SILENCE_MS. */
  connected(now = Date.now()): boolean {
    return etcdConnected(this.#o.lastSeen(), now);
  }

  /**
   * Connects to etcd. A host-name ETCD_SERVER (etcd.DOMAIN on a new node)
   * may not resolve yet: the cluster's DNS lists members a few seconds
   * after they are healthy, and delegation takes its time; radiod keeps
   * asking rather than exiting.
   */
  async connect(): Promise<{ client: Etcd3; endpoints: string[] }> {
    let said = false;
    for (;;) {
      try {
        const r = await connectEtcd(this.#o.config, {
          defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + ETCD_CALL_MS) }),
        });
        this.#endpoints = r.endpoints.map(parseEndpoint);
        const tls = loadTls(this.#o.config);
        this.#probeTls = tls ? { ca: tls.rootCertificate, ...(tls.certChain ? { cert: tls.certChain } : {}), ...(tls.privateKey ? { key: tls.privateKey } : {}) } : null;
        return r;
      } catch (err) {
        if (!hasCode(err, 'RADIOAI_ERR_ETCD_UNREACHABLE') || this.#o.draining()) throw err;
        if (!said) log.warn(`${describe(err)}; asking again every ${RESOLVE_RETRY_MS / 1000} s`);
        said = true;
        await new Promise((r) => setTimeout(r, RESOLVE_RETRY_MS));
      }
    }
  }

  /** The embedded etcd takes a moment to elect itself; wait until it answers. */
  async waitForEmbedded(client: Etcd3): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await withDeadline(client.get('/radioai/v1/ping').string(), 1000, 'ping');
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new RadioError('RADIOAI_ERR_ETCD_UNREACHABLE', `embedded etcd did not answer within 30 s: ${describe(err)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** Starts asking every QUICK_MS, while etcd is silent, whether any member answers. */
  start(): void {
    this.#quick ??= setInterval(() => this.#quickCheck(), QUICK_MS);
  }

  stop(): void {
    if (this.#quick) clearInterval(this.#quick);
    this.#quick = null;
  }

  /** Once a tick: connected or not (said when it changes), why not, this node's member, out of service. Returns connected. */
  tick(): boolean {
    const connected = this.connected();
    if (connected !== this.#connected) {
      this.#connected = connected;
      if (connected) log.info('etcd reachable');
      else log.warn('etcd unreachable: serving the last known cluster state');
    }
    // Once per outage (and once if etcd never answered since start), say why when it is a fixable mistake.
    if (connected) this.#silentTicks = 0;
    else if (++this.#silentTicks === EXPLAIN_AFTER_TICKS) this.#explain();
    if (!connected || this.#ticks++ % 5 === 0) void this.#probeOwnMember();
    this.#checkService(connected);
    return connected;
  }

  #checkService(connected: boolean): void {
    const silentMs = Date.now() - this.#o.lastSeen();
    const out = outOfService({ connected, reachable: this.reachable, silentMs, leaseTtlS: this.#o.config.leaseTtl, others: this.#o.others() });
    if (out === this.outOfService) return;
    this.outOfService = out;
    if (out) log.warn(`no etcd member reachable for ${Math.round(silentMs / 1000)} s: out of service, sending listeners to other nodes`);
    else log.info('etcd reachable again: back in service');
  }

  /** Logs why the first endpoint refuses this node when it is a TLS or listening mistake an operator can fix. */
  #explain(): void {
    const first = this.#endpoints[0];
    if (!first) return;
    let tls: Tls | null = null;
    try {
      tls = loadTls(this.#o.config);
    } catch {
      // Unreadable files were reported when radiod connected.
    }
    void diagnoseEtcd(first.url, this.#o.config, tls).then((why) => {
      if (why && !this.#connected) log.warn(`etcd: ${why}`);
    }, () => undefined);
  }

  #quickCheck(): void {
    if (Date.now() - this.#o.lastSeen() < QUICK_AFTER_MS) {
      this.reachable = true;
      return;
    }
    if (this.#probingReachable) return;
    this.#probingReachable = true;
    void Promise.all(this.#endpoints.map((e) => reachable(e, REACHABLE_MS))).then((answers) => answers.some(Boolean)).then((ok) => {
      this.reachable = ok;
      this.#o.onReachability();
    }).finally(() => {
      this.#probingReachable = false;
    });
  }

  /** Is the member on this node's own address healthy (for etcd.DOMAIN)? */
  async #probeOwnMember(): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    try {
      const c = this.#o.config;
      const own = new Set([...c.publicIps, ...c.bindAddrs]);
      const local = this.#endpoints.filter((e) => own.has(e.host));
      this.localMember = local.length > 0 && (await Promise.all(local.map((e) => memberHealthy(e, this.#probeTls, 1000)))).some(Boolean);
    } finally {
      this.#probing = false;
    }
  }
}
