/**
 * The cluster snapshot as worker threads see it: plain objects decoded from
 * the shared buffer (layout.ts). The main thread builds the same shape from
 * its etcd model and publishes it; no passwords are ever part of it.
 */

export interface SnapshotNode {
  slot: number;
  name: string;
  addresses: string[];
  httpPort: number;
  dnsPort: number;
  icecastPort: number;
  icecastInternalPort: number;
  alive: boolean;
  master: boolean;
  icecastReady: boolean;
  etcdHealthy: boolean;
  proxy: boolean;
  listeners: number;
  bandwidthKbps: number;
  maxListeners: number;
  bandwidthLimitKbps: number;
}

export interface SnapshotMount {
  slot: number;
  path: string;
  relay: boolean;
  transcoded: boolean;
  fallbackPath: string | null;
  sourceConnected: boolean;
  listeners: number;
  /** Names of the nodes on which the mount is ready to serve. */
  readyOn: string[];
}

export interface Snapshot {
  seq: number;
  contentVersion: number;
  etcdConnected: boolean;
  stateLoaded: boolean;
  draining: boolean;
  /** Cut off from etcd: listeners go to other nodes, health answers 503. */
  outOfService: boolean;
  /** Unix seconds of the last successful contact with etcd. */
  etcdSeenAt: number;
  self: string | null;
  master: string | null;
  /** Entries left out at the last publish because the capacity was reached. */
  dropped: number;
  /** SOA serial of the DNS zone. */
  zoneSerial: number;
  nodes: SnapshotNode[];
  mounts: SnapshotMount[];
}

/** What the main thread publishes: the snapshot less what the buffer assigns. */
export interface SnapshotInput {
  etcdConnected: boolean;
  stateLoaded: boolean;
  draining: boolean;
  /** Cut off from etcd: listeners go to other nodes, health answers 503. */
  outOfService: boolean;
  etcdSeenAt: number;
  self: string | null;
  master: string | null;
  zoneSerial: number;
  nodes: Omit<SnapshotNode, 'slot' | 'master'>[];
  mounts: Omit<SnapshotMount, 'slot'>[];
}
