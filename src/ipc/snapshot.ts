/**
 * The cluster snapshot as worker threads see it: plain objects decoded from
 * the shared buffer (layout.ts). The main thread builds the same shape from
 * its etcd model and publishes it; no passwords are ever part of it, only
 * a salted hash of each mount's source credentials (credential.ts).
 */

export interface SnapshotNode {
  slot: number;
  name: string;
  addresses: string[];
  httpPort: number;
  dnsPort: number;
  icecastPort: number;
  icecastInternalPort: number;
  /** HTTPS_PORT while the node serves HTTPS, 0 when it does not. */
  httpsPort: number;
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

/**
 * What players and status pages are shown of a mount: the live stream's
 * description as the source sent it (from the Icecast that holds the
 * source), its current title, and the source's user name (not a secret:
 * radioctl prints it beside the password, which never gets here).
 */
export interface StreamInfo {
  username: string;
  title: string;
  name: string;
  description: string;
  genre: string;
  url: string;
  contentType: string;
  /** kbit/s as the source announced it, 0 when unknown. */
  bitrate: number;
  /** ISO 8601 time the source went live, '' when off air. */
  streamStart: string;
}

export const NO_STREAM_INFO: StreamInfo = { username: '', title: '', name: '', description: '', genre: '', url: '', contentType: '', bitrate: 0, streamStart: '' };

/** StreamInfo from untrusted JSON: unknown keys dropped, wrong types replaced by the empty value. */
export function streamInfoOf(v: unknown): StreamInfo {
  const o = typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  const s = (k: keyof StreamInfo): string => (typeof o[k] === 'string' ? (o[k]).slice(0, 1024) : '');
  const b = Number(o.bitrate);
  return {
    username: s('username'), title: s('title'), name: s('name'), description: s('description'), genre: s('genre'), url: s('url'),
    contentType: s('contentType'), bitrate: Number.isFinite(b) && b > 0 ? Math.round(b) : 0, streamStart: s('streamStart'),
  };
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
  info: StreamInfo;
  /** Hex SHA-256 of the snapshot's salt, the source user name and password (credential.ts); '' when unknown. */
  credential: string;
  /** Unix seconds of the last `radioctl kick-source` (0: never): sources carried since before it are dropped. */
  kickedAt: number;
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
  /** Hex salt of the mounts' credential hashes: random per radiod process. */
  credentialSalt: string;
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
