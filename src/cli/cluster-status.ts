/**
 * `radioctl status`: the cluster as etcd holds it, in the JSON shape fixed by
 * docs/radioctl.md and as a short table for people.
 */
import { hostPort } from '../core/host-port.ts';
import { columns } from './columns.ts';
import type { ClusterModel } from '../state/cluster-model.ts';

export interface StatusNode {
  name: string;
  addresses: string[];
  role: 'master' | 'relay';
  alive: boolean;
  icecast: string;
  http: string;
  listeners: number;
  bandwidth: number;
  bandwidthLimit: number;
  maxListeners: number;
  icecastReady: boolean;
  etcdMember: boolean;
  updatedAt: string | null;
}

export interface StatusMount {
  path: string;
  source: boolean;
  listeners: number;
  ready: string[];
  relay: string | null;
  fallback: string | null;
  transcode: string | null;
  /** The title the source set last ('' when none or off air). */
  title: string;
}

export interface ClusterStatus {
  master: string | null;
  nodes: StatusNode[];
  mounts: StatusMount[];
}

const hp = (addr: string | undefined, port: number): string => (addr === undefined ? `:${port}` : hostPort(addr, port));

export function clusterStatus(model: ClusterModel): ClusterStatus {
  const master = model.master();
  const nodes = [...model.nodes.values()].sort((a, b) => a.name.localeCompare(b.name)).map((n): StatusNode => {
    const s = model.status.get(n.name);
    return {
      name: n.name,
      addresses: n.addresses,
      role: n.name === master ? 'master' : 'relay',
      alive: true,
      icecast: hp(n.addresses[0], n.icecastInternalPort || n.icecastPort),
      http: hp(n.addresses[0], n.httpPort),
      listeners: s?.listeners ?? 0,
      bandwidth: s?.bandwidth ?? 0,
      bandwidthLimit: n.bandwidthLimit,
      maxListeners: n.maxListeners,
      icecastReady: s?.icecastReady ?? false,
      etcdMember: s?.etcdMember ?? false,
      updatedAt: s?.updatedAt ?? null,
    };
  });
  const mounts = [...model.mounts.values()].sort((a, b) => a.path.localeCompare(b.path)).map((m): StatusMount => {
    const { listeners, source, readyOn, info } = model.mountSummary(m.path);
    const t = m.transcode;
    return {
      path: m.path,
      source,
      listeners,
      ready: readyOn,
      relay: m.relay,
      fallback: m.fallback,
      transcode: t ? `${t.source} -> ${t.codec} ${t.bitrate} kbit/s` : null,
      title: typeof info?.title === 'string' ? info.title : '',
    };
  });
  return { master, nodes, mounts };
}

/** The status for people: tab-separated tables, or aligned ones for a terminal (`aligned`). */
export function formatStatus(s: ClusterStatus, aligned = false): string {
  const nodes = [['NODE', 'ROLE', 'ALIVE', 'LISTENERS', 'BANDWIDTH', 'ADDRESSES'],
    ...s.nodes.map((n) => [n.name, n.role, n.alive ? 'yes' : 'no', n.listeners, `${Math.round(n.bandwidth / 1000)} kbit/s`, n.addresses.join(',')])];
  // A title is the source's text: tabs and line breaks in it would break the columns.
  const mounts = [['MOUNT', 'SOURCE', 'LISTENERS', 'TITLE'],
    ...s.mounts.map((m) => [m.path, m.source ? 'connected' : 'none', m.listeners, m.title.replace(/[\t\r\n]+/g, ' ')])];
  return [`master: ${s.master ?? '(none)'}`, '', ...columns(nodes, aligned), '', ...columns(mounts, aligned)].join('\n');
}
