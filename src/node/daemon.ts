/**
 * The radiod control plane on the main thread, as wiring and start/stop
 * order. The decisions live beside it: is etcd there and is this node cut
 * off (etcd-watch.ts); which master to act on and what Icecast should run
 * (acting-master.ts); what this node says about itself and what the workers
 * see (node-view.ts); the status page's figures (live-feed.ts); metrics
 * (node-metrics.ts).
 *
 * start(): Icecast's files, the TLS pair, the worker threads, metrics, an
 * embedded etcd when there is no ETCD_SERVER, then etcd: the cluster model,
 * transcoders, radioctl's listener queries, presence, the master campaign,
 * the peer watch, and a tick once a second. stop() undoes it in reverse.
 */
import type { Etcd3 } from 'etcd3';
import type { Config } from '../config/settings.ts';
import type { SupervisedChild } from '../children/child-process.ts';
import { startEmbeddedEtcd } from '../children/embedded-etcd.ts';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import { batchUnavailable, nativeAnswers } from '../dns/udp-batch.ts';
import { IcecastManager } from '../icecast/icecast-manager.ts';
import { SourceKiller } from '../icecast/source-kill.ts';
import { Transcoders } from '../icecast/transcoders.ts';
import { SnapshotWriter } from '../ipc/snapshot-writer.ts';
import { EMPTY_SNAPSHOT } from '../ipc/snapshot-reader.ts';
import type { Snapshot } from '../ipc/snapshot.ts';
import { S, statsBuffer, sumMountListeners, sumStats } from '../ipc/worker-stats.ts';
import { connPeekUnavailable, loadConnPeek } from '../proxy/conn-peek.ts';
import { fanSendUnavailable } from '../proxy/fan-send.ts';
import { knownAnswersUnavailable } from '../proxy/known-answers.ts';
import { sourceRelayUnavailable } from '../proxy/source-relay.ts';
import { ClusterModel, type NodeStatus } from '../state/cluster-model.ts';
import { ListenerQueries } from '../state/listener-query.ts';
import { ListenCheck, listening, replaceWorkers } from '../workers/listen-check.ts';
import { WorkerSupervisor } from '../workers/supervisor.ts';
import { workerInit } from '../workers/worker-init.ts';
import { RelayRetry, actingMaster, icecastDesired } from './acting-master.ts';
import { EtcdWatch } from './etcd-watch.ts';
import { Membership } from './membership.ts';
import { WorkerFeed } from './worker-feed.ts';
import { NodeMetrics } from './node-metrics.ts';
import { BandwidthMeter, ZoneSerial, nodeInfo, nodeStatus, snapshotInput } from './node-view.ts';

const log = logger('radiod');
/** How often node status is written and the snapshot refreshed. */
const TICK_MS = 1000;

export class Daemon {
  readonly config: Config;
  readonly writer: SnapshotWriter;
  readonly workers: WorkerSupervisor;
  readonly icecast: IcecastManager;
  /** Worker counters (listeners per mount, bytes sent). */
  readonly stats: SharedArrayBuffer;
  etcd: SupervisedChild | null = null;
  client: Etcd3 | null = null;
  model: ClusterModel | null = null;
  membership: Membership | null = null;
  /** Answers `radioctl listeners` (listener-query.ts). */
  listenerQueries: ListenerQueries | null = null;
  transcoders: Transcoders | null = null;
  /** Drops a source from this node's Icecast when its mount's credentials change or the mount goes. */
  sourceKiller: SourceKiller | null = null;
  /** What the workers see since the last publish (the writer's own view, not read back). */
  #published: Snapshot = EMPTY_SNAPSHOT;
  readonly #etcdWatch: EtcdWatch;
  readonly #listenCheck: ListenCheck;
  readonly #metrics: NodeMetrics;
  readonly #feed: WorkerFeed;
  readonly #relays = new RelayRetry();
  readonly #zone = new ZoneSerial();
  readonly #bandwidth = new BandwidthMeter();
  #tick: NodeJS.Timeout | null = null;
  #draining = false;
  #statusInFlight = false;
  #lastDropped = 0;
  /** Some worker answers on the public port (listen-check.ts). */
  #serving = true;
  #workersReplacedAt = 0;
  #etcdErrors = 0;
  #masterChanges = 0;
  #lastMaster: string | null = null;

  constructor(config: Config) {
    this.config = config;
    this.writer = new SnapshotWriter({ maxNodes: config.snapshotNodes, maxMounts: config.snapshotMounts, stringBytes: config.snapshotBytes });
    this.stats = statsBuffer(config.workers, config.snapshotMounts);
    this.workers = new WorkerSupervisor(config.workers, workerInit(config, { snapshot: this.writer.sab, stats: this.stats }));
    this.#feed = new WorkerFeed(config, this.workers);
    this.#listenCheck = new ListenCheck(config.bindAddrs[0]!, config.httpPort);
    this.#etcdWatch = new EtcdWatch({
      config,
      lastSeen: () => this.#lastSeen(),
      others: () => [...(this.model?.nodes.keys() ?? [])].some((n) => n !== config.nodeName),
      onReachability: () => this.transcoders?.sync(),
      draining: () => this.#draining,
    });
    this.icecast = new IcecastManager({
      dataDir: config.dataDir,
      bindAddrs: config.bindAddrs,
      port: config.icecastInternalPort,
      hostname: config.publicIps[0]!,
      limits: { clients: config.icecastClients, queueSize: config.icecastQueueSize, burstSize: config.icecastBurstSize },
    });
    this.#metrics = new NodeMetrics(config, {
      stats: this.stats,
      mounts: () => this.#published.mounts,
      totals: () => ({
        workerRestarts: this.workers.restarts,
        icecastRestarts: this.icecast.child.restarts,
        liquidsoapRestarts: this.transcoders?.restarts ?? 0,
        etcdErrors: this.#etcdErrors + (this.membership?.presence.leasesLost ?? 0),
        masterChanges: this.#masterChanges,
      }),
      peersRevoked: () => this.membership?.peerWatch.revocations ?? 0,
      role: () => this.icecast.role ?? 'none',
      etcdConnected: () => this.#etcdWatch.connected(),
      icecastSources: () => (this.#master() === config.nodeName ? this.icecast.stats?.mounts.size ?? 0 : 0),
      latency: () => this.#feed.latency(),
    });
    this.icecast.on('stats', () => {
      this.publish();
      void this.#writeStatus();
    });
  }

  async start(): Promise<void> {
    const c = this.config;
    log.info(`starting node ${c.nodeName} of ${c.domain} (${c.workers} workers, http ${c.bindAddrs.join(',')}:${c.httpPort})`);
    this.publish();
    await this.icecast.prepare();
    this.#feed.start();
    await this.workers.start();
    await this.#metrics.listen();
    const noBatch = batchUnavailable();
    log.info(noBatch === null ? `DNS over UDP in batches (recvmmsg/sendmmsg), ${nativeAnswers() ? 'questions asked before answered natively' : 'every answer made in JavaScript (RADIOAI_DNS_ANSWERS=off)'}` : `DNS over UDP with node:dgram; batched UDP unavailable: ${noBatch}`);
    log.info(loadConnPeek() ? 'front door: short HTTP/1.1 requests to uWebSockets.js, the rest to the Icecast-compatible door'
      : `front door: every request through the Icecast-compatible door; connection peeking unavailable: ${connPeekUnavailable()}`);
    const noFanSend = fanSendUnavailable();
    log.info(noFanSend === null ? 'listeners: plain TCP listeners served by native code (fan-send)'
      : `listeners: every listener through Node's streams; native listeners unavailable: ${noFanSend}`);
    const noKnown = knownAnswersUnavailable();
    log.info(noKnown === null ? 'redirects: answered natively once decided (known-answers)'
      : `redirects: every one through uWebSockets.js; native answers unavailable: ${noKnown}`);
    const noRelay = sourceRelayUnavailable();
    log.info(noRelay === null ? 'sources: plain uploads carried to the master by native code once taken (source-relay)'
      : `sources: every source through Node's streams; native relay unavailable: ${noRelay}`);
    if (c.etcdServer === '') this.etcd = await startEmbeddedEtcd({ dataDir: c.dataDir, clientPort: c.embeddedEtcdPort }, log);
    const { client, endpoints } = await this.#etcdWatch.connect();
    this.client = client;
    log.info(`etcd at ${endpoints.join(', ')}`);
    if (this.etcd) await this.#etcdWatch.waitForEmbedded(client);

    const model = new ClusterModel(client);
    this.model = model;
    this.transcoders = new Transcoders({ client, model, nodeName: c.nodeName, leaseTtl: c.leaseTtl, dataDir: c.dataDir, etcdReachable: () => this.#etcdWatch.reachable });
    this.sourceKiller = new SourceKiller({ host: c.bindAddrs[0]!, port: c.icecastInternalPort, adminPassword: this.icecast.adminPassword });
    model.on('connection', (up) => {
      if (!up) this.#etcdErrors++;
    });
    model.on('change', () => {
      const m = model.master();
      if (m !== null && m !== this.#lastMaster) {
        if (this.#lastMaster !== null) this.#masterChanges++;
        this.#lastMaster = m;
      }
      this.#applyIcecast();
      this.transcoders?.sync();
      if (model.loaded) this.sourceKiller?.sync(model.mounts.values());
      this.sourceKiller?.check(this.icecast.stats, this.#master() === c.nodeName);
      this.publish();
    });
    model.start().catch((err: unknown) => log.warn(`cluster state not read yet, serving nothing until it is: ${describe(err)}`));

    // radioctl listeners asks through etcd; the workers say who listens.
    const queries = new ListenerQueries(client, c.nodeName, (path) => this.workers.sessions(path));
    this.listenerQueries = queries;
    const watchQueries = (): void => {
      queries.start().catch((err: unknown) => {
        log.debug(`radioctl listeners not answered yet: ${describe(err)}`);
        if (!this.#draining) setTimeout(watchQueries, 5000).unref();
      });
    };
    watchQueries();

    const membership = new Membership({
      client, model, info: nodeInfo(c, new Date()), leaseTtl: c.leaseTtl,
      connected: () => this.#etcdWatch.connected() && !this.#etcdWatch.outOfService,
    });
    this.membership = membership;
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
    this.#etcdWatch.start();
    await membership.start();
  }

  #lastSeen(): number {
    return Math.max(this.model?.lastContact ?? 0, this.membership?.presence.lastAck ?? 0);
  }

  #onTick(): void {
    this.#etcdWatch.tick();
    this.#checkListening();
    this.#applyIcecast();
    this.sourceKiller?.check(this.icecast.stats, this.#master() === this.config.nodeName);
    this.#metrics.report();
    this.publish();
    const model = this.model;
    this.#feed.tick(this.#published, model?.masterCandidates() ?? [], (node, path) => model?.status.get(node)?.mounts[path]?.listeners ?? 0, Date.now());
    void this.#writeStatus();
  }

  /**
   * A node that no longer answers on its public port (every worker gone, or
   * listen sockets closed in a worker that lives on) tells the cluster so in
   * its status, which takes it out of every node's DNS, instead of staying
   * listed because its process and lease are alive.
   */
  #checkListening(): void {
    this.#listenCheck.tick();
    const now = Date.now();
    if (replaceWorkers(this.#listenCheck.refusals, now - this.#workersReplacedAt)) {
      this.#workersReplacedAt = now;
      this.workers.replaceAll(`${this.config.bindAddrs[0]}:${this.config.httpPort} refuses connections`);
    }
    const serving = listening(this.workers.readyCount, this.#listenCheck.failures);
    if (serving === this.#serving) return;
    this.#serving = serving;
    if (serving) log.info('answering on the public port again: back in DNS');
    else log.error(`not answering on ${this.config.bindAddrs[0]}:${this.config.httpPort} (${this.workers.readyCount} workers ready): out of DNS until it does`);
  }

  /** The master as this node acts on it (acting-master.ts). */
  #master(): string | null {
    const model = this.model;
    if (!model) return null;
    return actingMaster(this.config.nodeName, model.master(), model.masterCandidates(), this.#etcdWatch.outOfService);
  }

  #applyIcecast(): void {
    const model = this.model;
    if (!model?.loaded) return;
    const c = this.config;
    const master = this.#master();
    const want = icecastDesired({
      self: c.nodeName, master, candidates: model.masterCandidates(), outOfService: this.#etcdWatch.outOfService,
      nodes: model.nodes, mounts: model.mounts.values(), relayRetry: this.#relays.counts,
      icecastAllow: c.icecastAllow, ownAddresses: [...c.publicIps, ...c.bindAddrs],
    });
    if (!want) return;
    const stats = this.icecast.stats;
    // A relay's stream the master has but this node's Icecast lacks is asked for again (acting-master.ts);
    // the counts are part of the configuration just made.
    if (want.role === 'relay' && master !== null && stats) this.#relays.check(model.status.get(master)?.mounts ?? {}, (p) => stats.mounts.has(p), Date.now());
    try {
      this.icecast.apply(want);
    } catch (err) {
      log.error(`cannot configure Icecast: ${describe(err)}`);
    }
  }

  status(): NodeStatus {
    const c = this.config;
    const slots = new Map(this.#published.mounts.map((m) => [m.path, m.slot]));
    return nodeStatus({
      paths: this.model?.mounts.keys() ?? [],
      master: this.#master() === c.nodeName,
      icecastMounts: this.icecast.stats?.mounts ?? null,
      listenersOf: (path) => {
        const slot = slots.get(path);
        return slot === undefined ? 0 : sumMountListeners(this.stats, c.workers, c.snapshotMounts, slot);
      },
      listeners: sumStats(this.stats, c.workers, c.snapshotMounts, S.LISTENERS),
      bandwidth: this.#bandwidth.measure(sumStats(this.stats, c.workers, c.snapshotMounts, S.KBYTES_SENT), Date.now()),
      icecastReady: this.icecast.ready,
      etcdMember: this.#etcdWatch.connected() && (this.etcd ? this.etcd.running : this.#etcdWatch.localMember),
      serving: this.#serving,
      httpsPort: this.#feed.https ? c.httpsPort : 0,
      now: new Date(),
    });
  }

  async #writeStatus(): Promise<void> {
    const presence = this.membership?.presence;
    if (!presence || this.#statusInFlight) return;
    this.#statusInFlight = true;
    try {
      await presence.writeStatus(this.status());
    } finally {
      this.#statusInFlight = false;
    }
  }

  publish(): void {
    const r = this.writer.publish(snapshotInput({
      model: this.model,
      self: this.config.nodeName,
      master: this.#master(),
      connected: this.#etcdWatch.connected(),
      outOfService: this.#etcdWatch.outOfService,
      serving: this.#serving,
      draining: this.#draining,
      lastSeen: this.#lastSeen(),
      credential: (u, p) => this.writer.credential(u, p),
      zoneSerial: this.#zone,
      now: Date.now(),
    }));
    this.#published = r.snapshot;
    if (r.dropped.length !== this.#lastDropped) {
      this.#lastDropped = r.dropped.length;
      if (r.dropped.length > 0) {
        log.error(`${hasCapacity(r.dropped.length)}: ${r.dropped.slice(0, 5).join('; ')}${r.dropped.length > 5 ? '; ...' : ''}`);
      } else log.info('shared snapshot holds the whole cluster state again');
    }
  }

  /** SIGHUP: the listener log opened again (logrotate), the TLS pair read again. */
  reload(): void {
    this.#feed.reload();
  }

  /** Graceful stop: drain, close the workers' sockets, leave etcd, stop children. */
  async stop(): Promise<void> {
    log.info('stopping');
    this.#draining = true;
    this.#feed.stopWatching();
    if (this.#tick) clearInterval(this.#tick);
    this.#etcdWatch.stop();
    this.publish();
    await Promise.all([this.workers.stop(4000), this.icecast.stop(), this.transcoders?.stop()]);
    await Promise.race([
      Promise.all([this.membership?.stop(), this.listenerQueries?.stop(), this.model?.stop()]),
      new Promise((r) => setTimeout(r, 2000)),
    ]);
    this.client?.close();
    await Promise.all([this.etcd?.stop(2000), this.#metrics.close(), this.#feed.close()]);
    log.info('stopped');
  }
}

function hasCapacity(n: number): string {
  return `shared snapshot capacity exceeded, ${n} entr${n === 1 ? 'y' : 'ies'} left out (raise SNAPSHOT_NODES, SNAPSHOT_MOUNTS or SNAPSHOT_BYTES)`;
}
