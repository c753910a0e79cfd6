/**
 * The radiod control plane on the main thread: it starts the embedded etcd
 * when there is no ETCD_SERVER, keeps the cluster model from etcd, publishes
 * it into the shared snapshot for the workers, keeps this node's presence,
 * status and master campaign on etcd, and supervises the worker threads.
 * stop() undoes all of it in the reverse order.
 */
import type { Etcd3 } from 'etcd3';
import type { Config } from './config/settings.ts';
import type { SupervisedChild } from './control/child-process.ts';
import { embeddedEtcd } from './control/embedded-etcd.ts';
import { RadioError, describe, hasCode } from './core/errors.ts';
import { logger } from './core/log.ts';
import { ListenerHistory, buildLiveStatus } from './metrics/listener-history.ts';
import { HISTORY_STEP_S } from './shared/live-status.ts';
import { TlsFiles } from './config/tls-files.ts';
import { VERSION } from './core/version.ts';
import { streamInfoOf, type SnapshotInput } from './shared/snapshot.ts';
import { connPeekUnavailable, loadConnPeek } from './proxy/conn-peek.ts';
import { ClusterModel, type NodeInfo, type NodeStatus } from './state/cluster-model.ts';
import { Campaigner } from './state/election.ts';
import { MASTER_ELECTION } from './state/keys.ts';
import { connectEtcd, loadTls, withDeadline, type Tls } from './state/etcd-client.ts';
import { diagnoseEtcd } from './state/etcd-diagnose.ts';
import { etcdAt, memberHealthy, parseEndpoint, reachable, type Endpoint, type ProbeTls } from './state/etcd-probe.ts';
import { PeerWatch, type PeerAddress } from './state/peer-watch.ts';
import { ListenerQueries } from './state/listener-query.ts';
import { Presence } from './state/presence.ts';
import { SnapshotWriter } from './state/snapshot-writer.ts';
import { kickedSeconds } from './state/mount-record.ts';
import { WorkerSupervisor } from './workers/supervisor.ts';
import { ListenCheck, listening, replaceWorkers } from './workers/listen-check.ts';
import { IcecastManager, type IcecastDesired } from './icecast/icecast-manager.ts';
import { Transcoders } from './icecast/transcoders.ts';
import { icecastRole } from './icecast/icecast-role.ts';
import { allowedAddresses } from './icecast/allow-list.ts';
import { SourceKiller } from './icecast/source-kill.ts';
import { SnapshotReader } from './shared/snapshot-reader.ts';
import { nodeIcecast } from './shared/host-port.ts';
import { zoneKey } from './dns/zone.ts';
import { batchUnavailable } from './dns/udp-batch.ts';
import { S, statsBuffer, sumMountListeners, sumStats } from './shared/worker-stats.ts';
import { summarize, type EncodedLatency } from './shared/latency.ts';
import { StatsdReporter } from './metrics/statsd-reporter.ts';
import { PrometheusServer } from './metrics/prometheus.ts';
import { AccessLog } from './metrics/access-log.ts';

const log = logger('radiod');
/** How often node status is written and the snapshot refreshed. */
const TICK_MS = 1000;
const RESOLVE_RETRY_MS = 2000;
/** etcd counts as unreachable after this long without an answer. */
const ETCD_SILENCE_MS = 3000;
/**
 * Past this long without etcd, radiod asks every QUICK_MS whether any member
 * answers at all, so that a node cut off knows it (and stops its
 * transcoders, transcoders.ts) well within one lease TTL.
 */
const QUICK_AFTER_MS = 1000;
const QUICK_MS = 250;
/** A member on the same network answers a TCP connect within milliseconds. */
const REACHABLE_MS = 500;
/** Ticks without etcd before radiod looks for the reason (a TLS or address mistake). */
const EXPLAIN_AFTER_TICKS = 3;
/** Deadline of a single unary etcd call, so a dead etcd cannot pile up requests. */
const ETCD_CALL_MS = 3000;

export class Daemon {
  readonly config: Config;
  readonly writer: SnapshotWriter;
  etcd: SupervisedChild | null = null;
  client: Etcd3 | null = null;
  model: ClusterModel | null = null;
  presence: Presence | null = null;
  election: Campaigner | null = null;
  /** Answers `radioctl listeners` (listener-query.ts). */
  listenerQueries: ListenerQueries | null = null;
  /** Finds a dead node (the master above all) before its leases run out (peer-watch.ts). */
  peerWatch: PeerWatch | null = null;
  workers: WorkerSupervisor;
  readonly icecast: IcecastManager;
  /** Worker counters (listeners per mount, bytes sent). */
  readonly stats: SharedArrayBuffer;
  readonly #reader: SnapshotReader;
  #kbytesBefore = 0;
  #zoneKeyLast: string | null = null;
  #serial = 0;
  #rateAt = 0;
  #bandwidth = 0;
  transcoders: Transcoders | null = null;
  /** Drops a source from this node's Icecast when its mount's credentials change or the mount goes. */
  sourceKiller: SourceKiller | null = null;
  #tick: NodeJS.Timeout | null = null;
  #quick: NodeJS.Timeout | null = null;
  #probingReachable = false;
  /** Relay restarts asked of Icecast per mount, and when the last was asked. */
  readonly #relayRetry = new Map<string, number>();
  readonly #relayRetryAt = new Map<string, number>();
  #draining = false;
  #etcdConnected = false;
  #statusInFlight = false;
  #lastDropped = 0;
  #endpoints: Endpoint[] = [];
  #probeTls: ProbeTls | null = null;
  #probing = false;
  #ticks = 0;
  #silentTicks = 0;
  /** Some etcd member accepted a TCP connection at the last probe. */
  #etcdReachable = true;
  /** The etcd member on this node's own address reported itself healthy. */
  #localMember = false;
  #outOfService = false;
  readonly #listenCheck: ListenCheck;
  /** Some worker answers on the public port (listen-check.ts). */
  #serving = true;
  #workersReplacedAt = 0;
  #metrics: StatsdReporter | null = null;
  #prometheus: PrometheusServer | null = null;
  #access: AccessLog | null = null;
  /** Each worker's latest latency histograms, merged for /debug/latency. */
  readonly #latency = new Map<number, EncodedLatency>();
  #latencyChanged = false;
  /** Listeners per mount over the last hour, for the status page. */
  readonly #history = new ListenerHistory();
  #lastHistoryAt = 0;
  /** The status page's figures last sent to the workers ('' after a worker restart: send again). */
  #liveSent = '';
  #etcdErrors = 0;
  #masterChanges = 0;
  #lastMaster: string | null = null;
  /** The HTTPS certificate and key, watched for changes. */
  readonly #tls: TlsFiles;

  constructor(config: Config) {
    this.config = config;
    this.writer = new SnapshotWriter({
      maxNodes: config.snapshotNodes,
      maxMounts: config.snapshotMounts,
      stringBytes: config.snapshotBytes,
    });
    this.stats = statsBuffer(config.workers, config.snapshotMounts);
    this.workers = new WorkerSupervisor(config.workers, {
      snapshot: this.writer.sab,
      stats: this.stats,
      maxMounts: config.snapshotMounts,
      bindAddrs: config.bindAddrs,
      httpPort: config.httpPort,
      icecastPort: config.icecastPort,
      icecastInternalPort: config.icecastInternalPort,
      proxy: config.icecastProxy,
      burstBytes: config.icecastBurstSize,
      queueBytes: config.icecastQueueSize,
      domain: config.domain,
      nodeName: config.nodeName,
      dnsPort: config.dnsPort,
      nameservers: config.nameservers,
      dnsTtl: config.dnsTtl,
      dnsMaxRecords: config.dnsMaxRecords,
      dnsRrl: config.dnsRrl,
      faults: process.env.RADIOAI_FAULTS === '1',
      sourceAuth: { failures: config.sourceAuthFailures, lockoutSeconds: config.sourceAuthLockout },
      frontLimits: { maxConnections: config.maxConnections, clientRate: config.clientConnRate, clientPending: config.clientPending, workers: config.workers },
      accessLog: { enabled: config.accessLog !== '', trustedProxies: config.trustedProxies },
      https: { port: config.httpsPort, cert: null, key: null },
      logFormat: config.logFormat,
    });
    this.#tls = new TlsFiles(config.tlsCert, config.tlsKey);
    // Before the workers start, this fills in the certificate they start with; after, it reaches the running ones.
    this.#tls.on('change', (m) => this.workers.setTls(m.cert, m.key));
    if (config.accessLog !== '') {
      const access = new AccessLog(config.accessLog, config.nodeName);
      this.#access = access;
      this.workers.on('access', (entries, dropped) => access.write(entries, dropped));
    }
    this.#reader = new SnapshotReader(this.writer.sab);
    this.#listenCheck = new ListenCheck(config.bindAddrs[0]!, config.httpPort);
    this.icecast = new IcecastManager({
      dataDir: config.dataDir,
      bindAddrs: config.bindAddrs,
      port: config.icecastInternalPort,
      hostname: config.publicIps[0]!,
      limits: { clients: config.icecastClients, queueSize: config.icecastQueueSize, burstSize: config.icecastBurstSize },
    });
    // A restarted worker starts with no summary: send it one at the next tick.
    this.workers.on('restart', () => {
      this.#latencyChanged = true;
      this.#liveSent = '';
    });
    this.workers.on('latency', (id, h) => {
      this.#latency.set(id, { ...this.#latency.get(id), ...h });
      this.#latencyChanged = true;
    });
    if (config.statsd !== '') {
      this.#metrics = new StatsdReporter(config.statsd, config.nodeName, {
        stats: this.stats,
        workers: config.workers,
        maxMounts: config.snapshotMounts,
        mounts: () => this.#reader.current().mounts,
        totals: () => this.#totals(),
      });
    }
    if (config.metricsAddr !== '') {
      this.#prometheus = new PrometheusServer({
        node: config.nodeName,
        version: VERSION,
        stats: this.stats,
        workers: config.workers,
        maxMounts: config.snapshotMounts,
        mounts: () => this.#reader.current().mounts,
        role: () => this.icecast.role ?? 'none',
        etcdConnected: () => this.#connected(),
        icecastSources: () => (this.#master() === config.nodeName ? this.icecast.stats?.mounts.size ?? 0 : 0),
        latency: () => this.#latency.values(),
        totals: () => ({ ...this.#totals(), peersRevoked: this.peerWatch?.revocations ?? 0 }),
      });
    }
    this.icecast.on('stats', () => {
      this.publish();
      void this.#writeStatus();
    });
  }

  /** Monotonic totals for the metrics. */
  #totals(): Record<'workerRestarts' | 'icecastRestarts' | 'liquidsoapRestarts' | 'etcdErrors' | 'masterChanges', number> {
    return {
      workerRestarts: this.workers.restarts,
      icecastRestarts: this.icecast.child.restarts,
      liquidsoapRestarts: this.transcoders?.restarts ?? 0,
      etcdErrors: this.#etcdErrors + (this.presence?.leasesLost ?? 0),
      masterChanges: this.#masterChanges,
    };
  }

  nodeInfo(): NodeInfo {
    const c = this.config;
    return {
      name: c.nodeName,
      addresses: c.publicIps,
      httpPort: c.httpPort,
      dnsPort: c.dnsPort,
      icecastPort: c.icecastPort,
      icecastInternalPort: c.icecastInternalPort,
      proxy: c.icecastProxy,
      maxListeners: c.maxListeners,
      bandwidthLimit: c.bandwidthLimit,
      version: VERSION,
      startedAt: new Date().toISOString(),
    };
  }

  async start(): Promise<void> {
    const c = this.config;
    log.info(`starting node ${c.nodeName} of ${c.domain} (${c.workers} workers, http ${c.bindAddrs.join(',')}:${c.httpPort})`);
    this.publish();
    await this.icecast.prepare();
    this.#tls.start();
    await this.workers.start();
    if (this.#prometheus) {
      const addr = c.metricsAddr;
      const i = addr.lastIndexOf(':');
      const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
      // Metrics are not worth a node that does not serve: a taken port is said, and radiod goes on.
      await this.#prometheus.listen(host, Number(addr.slice(i + 1))).then(
        (port) => log.info(`Prometheus metrics at http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`),
        (err: unknown) => log.error(`cannot serve Prometheus metrics on ${addr}: ${describe(err)} (METRICS_ADDR)`),
      );
    }
    const noBatch = batchUnavailable();
    log.info(noBatch === null ? 'DNS over UDP in batches (recvmmsg/sendmmsg)' : `DNS over UDP with node:dgram; batched UDP unavailable: ${noBatch}`);
    log.info(loadConnPeek() ? 'front door: short HTTP/1.1 requests to uWebSockets.js, the rest to the Icecast-compatible door'
      : `front door: every request through the Icecast-compatible door; connection peeking unavailable: ${connPeekUnavailable()}`);
    if (c.etcdServer === '') {
      const etcd = await embeddedEtcd({ dataDir: c.dataDir, clientPort: c.embeddedEtcdPort });
      // Debian's etcd service (etcd-server, which the package depends on) listens on
      // 127.0.0.1:2379 too: a node with a running system etcd uses it.
      const held = await etcdAt(parseEndpoint(`http://127.0.0.1:${c.embeddedEtcdPort}`), 1000);
      if (held === 'etcd') {
        log.info(`an etcd already serves 127.0.0.1:${c.embeddedEtcdPort} (the system's etcd service); using it instead of starting one`);
      } else {
        if (held === 'other') log.error(`127.0.0.1:${c.embeddedEtcdPort} is taken by something that is not etcd; set EMBEDDED_ETCD_PORT to a free port, or ETCD_SERVER`);
        this.etcd = etcd;
        etcd.on('start', (pid) => log.info(`embedded etcd running (pid ${pid}) on 127.0.0.1:${c.embeddedEtcdPort}`));
        etcd.start();
      }
    }
    const { client, endpoints } = await this.#connect();
    this.client = client;
    this.#endpoints = endpoints.map(parseEndpoint);
    const tls = loadTls(c);
    this.#probeTls = tls ? { ca: tls.rootCertificate, ...(tls.certChain ? { cert: tls.certChain } : {}), ...(tls.privateKey ? { key: tls.privateKey } : {}) } : null;
    log.info(`etcd at ${endpoints.join(', ')}`);
    if (this.etcd) await this.#waitForEtcd(client);

    const model = new ClusterModel(client);
    this.model = model;
    this.transcoders = new Transcoders({ client, model, nodeName: c.nodeName, leaseTtl: c.leaseTtl, dataDir: c.dataDir, etcdReachable: () => this.#etcdReachable });
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

    this.presence = new Presence(client, this.nodeInfo(), c.leaseTtl);
    this.election = new Campaigner(client, MASTER_ELECTION, c.nodeName, c.leaseTtl);
    // Campaign only as the registered holder of this name: a second radiod with the same name never becomes master.
    const election = this.election;
    void this.presence.firstRegistration.then(() => election.start());
    const presence = this.presence;
    this.peerWatch = new PeerWatch({
      client,
      self: c.nodeName,
      peers: () => {
        const out: PeerAddress[] = [];
        for (const n of model.nodes.values()) {
          const icecast = n.name === c.nodeName ? null : nodeIcecast(n);
          if (icecast) out.push({ name: n.name, host: icecast.host, httpPort: n.httpPort, icecastPort: icecast.port });
        }
        return out;
      },
      voters: (suspect) => [...model.nodes.keys()].filter((n) => n !== suspect),
      leaseId: () => presence.leaseId,
      connected: () => this.#connected() && !this.#outOfService,
    });
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
    this.#quick = setInterval(() => this.#quickCheck(), QUICK_MS);
    // Throws RADIOAI_ERR_NAME_TAKEN when another live node has this name, which ends radiod (main.ts).
    await this.presence.start();
  }

  /**
   * Connects to etcd. A host-name ETCD_SERVER (etcd.DOMAIN on a new node)
   * may not resolve yet: the cluster's DNS lists members a few seconds
   * after they are healthy, and delegation takes its time; radiod keeps
   * asking rather than exiting.
   */
  async #connect(): ReturnType<typeof connectEtcd> {
    let said = false;
    for (;;) {
      try {
        return await connectEtcd(this.config, {
          defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + ETCD_CALL_MS) }),
        });
      } catch (err) {
        if (!hasCode(err, 'RADIOAI_ERR_ETCD_UNREACHABLE') || this.#draining) throw err;
        if (!said) log.warn(`${describe(err)}; asking again every ${RESOLVE_RETRY_MS / 1000} s`);
        said = true;
        await new Promise((r) => setTimeout(r, RESOLVE_RETRY_MS));
      }
    }
  }

  /** The embedded etcd takes a moment to elect itself; wait until it answers. */
  async #waitForEtcd(client: Etcd3): Promise<void> {
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

  #lastSeen(): number {
    return Math.max(this.model?.lastContact ?? 0, this.presence?.lastAck ?? 0);
  }

  #connected(): boolean {
    return Date.now() - this.#lastSeen() < ETCD_SILENCE_MS;
  }

  #onTick(): void {
    const connected = this.#connected();
    if (connected !== this.#etcdConnected) {
      this.#etcdConnected = connected;
      if (connected) log.info('etcd reachable');
      else log.warn('etcd unreachable: serving the last known cluster state');
    }
    // Once per outage (and once if etcd never answered since start), say why when it is a fixable mistake.
    if (connected) this.#silentTicks = 0;
    else if (++this.#silentTicks === EXPLAIN_AFTER_TICKS) this.#explainEtcd();
    if (!connected || this.#ticks++ % 5 === 0) void this.#probe();
    this.#checkService(connected);
    this.#checkListening();
    this.#applyIcecast();
    this.sourceKiller?.check(this.icecast.stats, this.#master() === this.config.nodeName);
    this.#metrics?.report();
    if (this.#latencyChanged) {
      this.#latencyChanged = false;
      this.workers.broadcast({ type: 'LATENCY_SUMMARY', json: JSON.stringify({ node: this.config.nodeName, ...summarize(this.#latency.values()) }) });
    }
    this.publish();
    this.#sendLive();
    void this.#writeStatus();
  }

  /** Samples the listener plot every HISTORY_STEP_S and sends the workers the status page's figures when they change. */
  #sendLive(): void {
    const snap = this.#reader.current();
    const now = Date.now();
    if (now - this.#lastHistoryAt >= HISTORY_STEP_S * 1000) {
      this.#lastHistoryAt = now;
      this.#history.sample(snap.mounts);
    }
    const model = this.model;
    const live = buildLiveStatus(snap, model?.masterCandidates() ?? [], (node, path) => model?.status.get(node)?.mounts[path]?.listeners ?? 0, this.#history, 0);
    // Compared without its time, which changes every second: the page says when the figures last changed.
    const json = JSON.stringify(live);
    if (json === this.#liveSent) return;
    this.#liveSent = json;
    this.workers.broadcast({ type: 'LIVE_STATUS', json: JSON.stringify({ ...live, at: now }) });
  }

  /** Logs why the first endpoint refuses this node when it is a TLS or listening mistake an operator can fix. */
  #explainEtcd(): void {
    const first = this.#endpoints[0];
    if (!first) return;
    let tls: Tls | null = null;
    try {
      tls = loadTls(this.config);
    } catch {
      // Unreadable files were reported when radiod connected.
    }
    void diagnoseEtcd(first.url, this.config, tls).then((why) => {
      if (why && !this.#etcdConnected) log.warn(`etcd: ${why}`);
    }, () => undefined);
  }

  /**
   * While etcd has been silent for QUICK_AFTER_MS: does any member answer at
   * all? Then the transcoders are checked at once (a cut-off node stops its
   * liquidsoap before another node's starts).
   */
  #quickCheck(): void {
    if (Date.now() - this.#lastSeen() < QUICK_AFTER_MS) {
      this.#etcdReachable = true;
      return;
    }
    if (this.#probingReachable) return;
    this.#probingReachable = true;
    void Promise.all(this.#endpoints.map((e) => reachable(e, REACHABLE_MS))).then((answers) => answers.some(Boolean)).then((ok) => {
      this.#etcdReachable = ok;
      this.transcoders?.sync();
    }).finally(() => {
      this.#probingReachable = false;
    });
  }

  /** Is the member on this node's own address healthy (for etcd.DOMAIN)? Whether any member answers is #quickCheck's. */
  async #probe(): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    try {
      const own = new Set([...this.config.publicIps, ...this.config.bindAddrs]);
      const local = this.#endpoints.filter((e) => own.has(e.host));
      this.#localMember = local.length > 0 && (await Promise.all(local.map((e) => memberHealthy(e, this.#probeTls, 1000)))).some(Boolean);
    } finally {
      this.#probing = false;
    }
  }

  /**
   * Out of service: no etcd member has answered for a whole lease TTL (the
   * others have dropped this node by now) and other nodes exist to take its
   * listeners. A cluster whose etcd lost quorum is different: members still
   * answer, every node is in the same state, and each keeps serving.
   */
  #checkService(connected: boolean): void {
    const silentMs = Date.now() - this.#lastSeen();
    const others = [...(this.model?.nodes.keys() ?? [])].some((n) => n !== this.config.nodeName);
    const out = !connected && !this.#etcdReachable && silentMs >= this.config.leaseTtl * 1000 && others;
    if (out === this.#outOfService) return;
    this.#outOfService = out;
    if (out) log.warn(`no etcd member reachable for ${Math.round(silentMs / 1000)} s: out of service, sending listeners to other nodes`);
    else log.info('etcd reachable again: back in service');
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

  /**
   * The master as this node should act on it. A node out of service cannot
   * know the election's outcome; if it was the master, the others elect the
   * next candidate once its lease expires, so it steps down to that one
   * rather than keep sources the rest of the cluster no longer relays.
   */
  #master(): string | null {
    const model = this.model;
    if (!model) return null;
    const self = this.config.nodeName;
    if (!this.#outOfService) return model.master();
    return model.masterCandidates().find((n) => n !== self) ?? null;
  }

  /** What the local Icecast should be, from the model: role, mounts, and where the master is. */
  icecastDesired(): IcecastDesired | null {
    const model = this.model;
    if (!model?.loaded) return null;
    const masterName = this.#master();
    // Until a master is known the role is not either: wait rather than start
    // Icecast in one role and restart it in the other a moment later.
    if (masterName === null) return null;
    const master = model.nodes.get(masterName);
    // Out of service this node is nobody's successor: it cannot know the election.
    const role = icecastRole(this.config.nodeName, masterName, this.#outOfService ? [] : model.masterCandidates());
    if (role === 'relay') this.#retryStalledRelays(masterName);
    return {
      role,
      mounts: [...model.mounts.values()].sort((a, b) => a.path.localeCompare(b.path)),
      master: master ? nodeIcecast(master) : null,
      relayRetry: this.#relayRetry,
      // Only the cluster's nodes (and ICECAST_ALLOW) reach this node's Icecast; listeners come through the door.
      allow: this.config.icecastAllow === null ? null : allowedAddresses(model.nodes.values(), [...this.config.publicIps, ...this.config.bindAddrs], this.config.icecastAllow),
    };
  }

  /**
   * A relay that failed (no source yet, master restarting) is retried by
   * Icecast only after about 10 s. When the master reports a mount live that
   * this node's Icecast still lacks, ask for the relay again at once, at most
   * every 3 s per mount.
   */
  #retryStalledRelays(masterName: string): void {
    const live = this.model?.status.get(masterName)?.mounts ?? {};
    const stats = this.icecast.stats;
    if (!stats) return;
    const now = Date.now();
    for (const [path, m] of Object.entries(live)) {
      if (!m.ready || stats.mounts.has(path)) continue;
      if (now - (this.#relayRetryAt.get(path) ?? 0) < 3000) continue;
      this.#relayRetryAt.set(path, now);
      this.#relayRetry.set(path, (this.#relayRetry.get(path) ?? 0) + 1);
    }
  }

  #applyIcecast(): void {
    const want = this.icecastDesired();
    if (!want) return;
    try {
      this.icecast.apply(want);
    } catch (err) {
      log.error(`cannot configure Icecast: ${describe(err)}`);
    }
  }

  /** Outbound bits/s over the last interval, from the workers' byte counters. */
  #measureBandwidth(): number {
    const c = this.config;
    const kb = sumStats(this.stats, c.workers, c.snapshotMounts, S.KBYTES_SENT);
    const now = Date.now();
    if (this.#rateAt > 0 && now > this.#rateAt) {
      // The counter wraps at 2^31 KiB; a difference modulo 2^32 stays right.
      const delta = (kb - this.#kbytesBefore) >>> 0;
      this.#bandwidth = Math.round((delta * 1024 * 8 * 1000) / (now - this.#rateAt));
    }
    this.#kbytesBefore = kb;
    this.#rateAt = now;
    return this.#bandwidth;
  }

  status(): NodeStatus {
    const c = this.config;
    const stats = this.icecast.stats;
    const master = this.#master() === c.nodeName;
    const slots = new Map(this.#reader.current().mounts.map((m) => [m.path, m.slot]));
    const mounts: NodeStatus['mounts'] = {};
    for (const path of this.model?.mounts.keys() ?? []) {
      const m = stats?.mounts.get(path);
      const slot = slots.get(path);
      const listeners = slot === undefined ? 0 : sumMountListeners(this.stats, c.workers, c.snapshotMounts, slot);
      const source = master && m !== undefined;
      // The master's Icecast holds the source: its figures describe the stream for the whole cluster.
      mounts[path] = source ? { ready: true, source, listeners, info: m.info } : { ready: m !== undefined, source, listeners };
    }
    return {
      listeners: sumStats(this.stats, c.workers, c.snapshotMounts, S.LISTENERS),
      bandwidth: this.#measureBandwidth(),
      icecastReady: this.icecast.ready,
      etcdMember: this.#connected() && (this.etcd ? this.etcd.running : this.#localMember),
      serving: this.#serving,
      httpsPort: this.#tls.current ? c.httpsPort : 0,
      mounts,
      updatedAt: new Date().toISOString(),
    };
  }

  async #writeStatus(): Promise<void> {
    if (!this.presence || this.#statusInFlight) return;
    this.#statusInFlight = true;
    try {
      await this.presence.writeStatus(this.status());
    } finally {
      this.#statusInFlight = false;
    }
  }

  snapshotInput(): SnapshotInput {
    const model = this.model;
    const nodes: SnapshotInput['nodes'] = [];
    const mounts: SnapshotInput['mounts'] = [];
    if (model) {
      for (const n of [...model.nodes.values()].sort((a, b) => a.name.localeCompare(b.name))) {
        const s = model.status.get(n.name);
        nodes.push({
          name: n.name,
          addresses: n.addresses,
          httpPort: n.httpPort,
          dnsPort: n.dnsPort,
          icecastPort: n.icecastPort,
          icecastInternalPort: n.icecastInternalPort,
          httpsPort: s?.httpsPort ?? 0,
          alive: n.name === this.config.nodeName ? !this.#outOfService && this.#serving : s?.serving !== false,
          icecastReady: s?.icecastReady ?? false,
          etcdHealthy: s?.etcdMember ?? false,
          proxy: n.proxy,
          listeners: s?.listeners ?? 0,
          bandwidthKbps: Math.round((s?.bandwidth ?? 0) / 1000),
          maxListeners: n.maxListeners,
          bandwidthLimitKbps: Math.round(n.bandwidthLimit / 1000),
        });
      }
      for (const m of [...model.mounts.values()].sort((a, b) => a.path.localeCompare(b.path))) {
        const { listeners, source, readyOn, info } = model.mountSummary(m.path);
        mounts.push({
          path: m.path, relay: m.relay !== null, transcoded: m.transcode !== null, fallbackPath: m.fallback, sourceConnected: source, listeners, readyOn,
          // Status records come from other nodes: only the known fields, as strings and numbers, reach the workers.
          info: streamInfoOf({ ...(info ?? {}), username: m.username }),
          // Only a salted hash of the login reaches the workers, which check sources with it.
          credential: this.writer.credential(m.username, m.password),
          kickedAt: kickedSeconds(m),
        });
      }
    }
    return {
      etcdConnected: this.#connected(),
      stateLoaded: model?.loaded ?? false,
      draining: this.#draining,
      outOfService: this.#outOfService,
      etcdSeenAt: Math.floor(this.#lastSeen() / 1000),
      self: this.config.nodeName,
      master: this.#master(),
      zoneSerial: this.#zoneSerial(nodes),
      nodes,
      mounts,
    };
  }

  /**
   * The DNS zone's SOA serial: the Unix time of the last change of what the
   * zone answers (nodes, addresses, etcd members), at least one more than the
   * previous serial, so secondaries and caches can tell versions apart.
   */
  #zoneSerial(nodes: SnapshotInput['nodes']): number {
    const key = zoneKey(nodes);
    if (key !== this.#zoneKeyLast) {
      this.#zoneKeyLast = key;
      this.#serial = Math.max(this.#serial + 1, Math.floor(Date.now() / 1000));
    }
    return this.#serial;
  }

  publish(): void {
    const r = this.writer.publish(this.snapshotInput());
    if (r.dropped.length !== this.#lastDropped) {
      this.#lastDropped = r.dropped.length;
      if (r.dropped.length > 0) {
        log.error(`${hasCapacity(r.dropped.length)}: ${r.dropped.slice(0, 5).join('; ')}${r.dropped.length > 5 ? '; ...' : ''}`);
      } else log.info('shared snapshot holds the whole cluster state again');
    }
  }

  /** SIGHUP: what other daemons do on it that applies here (the listener log is opened again). */
  reload(): void {
    if (this.#access) {
      this.#access.reopen();
      log.info(`SIGHUP: listener log ${this.config.accessLog} opened again`);
    } else log.info('SIGHUP: no listener log to open again');
    const tls = this.#tls.reload('SIGHUP');
    if (tls === 'same') log.info('SIGHUP: the certificate has not changed');
  }

  /** Graceful stop: drain, close the workers' sockets, leave etcd, stop children. */
  async stop(): Promise<void> {
    log.info('stopping');
    this.#draining = true;
    this.#tls.stop();
    if (this.#tick) clearInterval(this.#tick);
    if (this.#quick) clearInterval(this.#quick);
    this.publish();
    await Promise.all([this.workers.stop(4000), this.icecast.stop(), this.transcoders?.stop()]);
    await Promise.race([
      Promise.all([this.peerWatch?.close(), this.listenerQueries?.stop(), this.election?.stop(), this.presence?.stop(), this.model?.stop()]),
      new Promise((r) => setTimeout(r, 2000)),
    ]);
    this.client?.close();
    await Promise.all([this.etcd?.stop(2000), this.#metrics?.close(), this.#prometheus?.close(), this.#access?.close()]);
    log.info('stopped');
  }
}

function hasCapacity(n: number): string {
  return `shared snapshot capacity exceeded, ${n} entr${n === 1 ? 'y' : 'ies'} left out (raise SNAPSHOT_NODES, SNAPSHOT_MOUNTS or SNAPSHOT_BYTES)`;
}
