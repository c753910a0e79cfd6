/**
 * What this node says about itself and what its workers see, as pure
 * functions of their inputs:
 *
 * - nodeInfo: the record this node registers under its name (addresses,
 *   ports, limits, version);
 * - nodeStatus: the record written on the lease once a second (listeners,
 *   outbound rate, health, per mount ready/source/listeners, and the live
 *   stream's description from the master's Icecast, which holds the source);
 * - snapshotInput: the cluster model as the workers read it (no password:
 *   a salted hash of each mount's login instead);
 * - ZoneSerial: the DNS zone's SOA serial, which moves only when what the
 *   zone answers changes;
 * - BandwidthMeter: outbound bits per second from the workers' byte counter.
 */
import { zoneKey } from '../dns/zone.ts';
import type { LiveInfo } from '../icecast/icecast-stats.ts';
import { streamInfoOf, type SnapshotInput } from '../ipc/snapshot.ts';
import type { Config } from '../config/settings.ts';
import { VERSION } from '../core/version.ts';
import type { ClusterModel, NodeInfo, NodeStatus } from '../state/cluster-model.ts';
import { kickedSeconds } from '../state/mount-record.ts';

export function nodeInfo(c: Config, startedAt: Date): NodeInfo {
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
    startedAt: startedAt.toISOString(),
  };
}

export interface StatusInputs {
  /** Mount paths the cluster has. */
  paths: Iterable<string>;
  /** This node is the master it acts on: its Icecast's mounts are the sources. */
  master: boolean;
  /** This node's Icecast's live mounts, with their description; null before the first look. */
  icecastMounts: ReadonlyMap<string, { info: LiveInfo }> | null;
  /** Listeners this node serves, per mount and in all. */
  listenersOf: (path: string) => number;
  listeners: number;
  bandwidth: number;
  icecastReady: boolean;
  etcdMember: boolean;
  serving: boolean;
  /** HTTPS_PORT while this node has a certificate, else 0. */
  httpsPort: number;
  now: Date;
}

export function nodeStatus(i: StatusInputs): NodeStatus {
  const mounts: NodeStatus['mounts'] = {};
  for (const path of i.paths) {
    const m = i.icecastMounts?.get(path);
    const listeners = i.listenersOf(path);
    const source = i.master && m !== undefined;
    // The master's Icecast holds the source: its figures describe the stream for the whole cluster.
    mounts[path] = source ? { ready: true, source, listeners, info: m.info } : { ready: m !== undefined, source, listeners };
  }
  return {
    listeners: i.listeners,
    bandwidth: i.bandwidth,
    icecastReady: i.icecastReady,
    etcdMember: i.etcdMember,
    serving: i.serving,
    httpsPort: i.httpsPort,
    mounts,
    updatedAt: i.now.toISOString(),
  };
}

export interface ViewInputs {
  model: ClusterModel | null;
  self: string;
  /** actingMaster()'s answer. */
  master: string | null;
  connected: boolean;
  outOfService: boolean;
  /** This node answers on its public port (listen-check.ts). */
  serving: boolean;
  draining: boolean;
  /** Unix ms of etcd's last answer. */
  lastSeen: number;
  /** The salted hash of a login (SnapshotWriter.credential). */
  credential: (username: string, password: string) => string;
  zoneSerial: ZoneSerial;
  now: number;
}

export function snapshotInput(i: ViewInputs): SnapshotInput {
  const model = i.model;
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
        alive: n.name === i.self ? !i.outOfService && i.serving : s?.serving !== false,
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
        credential: i.credential(m.username, m.password),
        kickedAt: kickedSeconds(m),
      });
    }
  }
  return {
    etcdConnected: i.connected,
    stateLoaded: model?.loaded ?? false,
    draining: i.draining,
    outOfService: i.outOfService,
    etcdSeenAt: Math.floor(i.lastSeen / 1000),
    self: i.self,
    master: i.master,
    zoneSerial: i.zoneSerial.next(nodes, i.now),
    nodes,
    mounts,
  };
}

/**
 * The SOA serial: the Unix time of the last change of what the zone answers
 * (nodes, addresses, etcd members), at least one more than the previous
 * serial, so secondaries and caches can tell versions apart.
 */
export class ZoneSerial {
  #key: string | null = null;
  #serial = 0;

  next(nodes: SnapshotInput['nodes'], now: number): number {
    const key = zoneKey(nodes);
    if (key !== this.#key) {
      this.#key = key;
      this.#serial = Math.max(this.#serial + 1, Math.floor(now / 1000));
    }
    return this.#serial;
  }
}

/** Outbound bits/s over the last interval, from the workers' KiB-sent counter (which wraps at 2^32). */
export class BandwidthMeter {
  #kbytes = 0;
  #at = 0;
  #bps = 0;

  measure(kbytes: number, now: number): number {
    if (this.#at > 0 && now > this.#at) {
      // A difference modulo 2^32 stays right across the counter's wrap.
      const delta = (kbytes - this.#kbytes) >>> 0;
      this.#bps = Math.round((delta * 1024 * 8 * 1000) / (now - this.#at));
    }
    this.#kbytes = kbytes;
    this.#at = now;
    return this.#bps;
  }
}
