/**
 * The zone radioai answers for, derived from the cluster snapshot:
 *
 *   DOMAIN, stream.DOMAIN   A/AAAA of the nodes that are alive
 *   NODE.DOMAIN             that node's addresses
 *   etcd.DOMAIN             nodes whose etcd member is healthy
 *   DOMAIN                  SOA, NS (NAMESERVERS; in-zone names get glue)
 *
 * A bare nameserver name ("node1") means node1.DOMAIN.
 */
import type { Snapshot } from '../ipc/snapshot.ts';

export interface ZoneConfig {
  domain: string;
  nameservers: string[];
  /** TTL of node records, seconds. */
  ttl: number;
  /** TTL of SOA and NS, seconds. */
  apexTtl: number;
  /** At most this many A (or AAAA) records in one answer. */
  maxRecords: number;
}

export interface Addresses {
  a: string[];
  aaaa: string[];
}

export interface Zone {
  domain: string;
  serial: number;
  names: Map<string, Addresses>;
  /** Nameserver FQDNs (no trailing dot). */
  ns: string[];
}

function split(addrs: string[]): Addresses {
  return { a: addrs.filter((a) => !a.includes(':')), aaaa: addrs.filter((a) => a.includes(':')) };
}

export function nsFqdn(ns: string, domain: string): string {
  return ns.includes('.') ? ns : `${ns}.${domain}`;
}

export function inZone(name: string, domain: string): boolean {
  return name === domain || name.endsWith(`.${domain}`);
}

export function buildZone(snap: Snapshot, cfg: ZoneConfig, serial: number): Zone {
  const d = cfg.domain;
  const names = new Map<string, Addresses>();
  const alive = snap.nodes.filter((n) => n.alive);
  const all = split(alive.flatMap((n) => n.addresses));
  names.set(d, all);
  names.set(`stream.${d}`, all);
  names.set(`etcd.${d}`, split(alive.filter((n) => n.etcdHealthy).flatMap((n) => n.addresses)));
  for (const n of alive) names.set(`${n.name}.${d}`, split(n.addresses));
  const ns = cfg.nameservers.map((n) => nsFqdn(n, d));
  for (const n of ns) if (inZone(n, d) && !names.has(n)) names.set(n, { a: [], aaaa: [] });
  return { domain: d, serial, names, ns };
}

/** What the zone's content depends on, so the serial moves only when answers would. */
export function zoneKey(nodes: readonly { name: string; addresses: string[]; alive: boolean; etcdHealthy: boolean }[]): string {
  return nodes.filter((n) => n.alive).map((n) => `${n.name}=${n.addresses.join(',')}${n.etcdHealthy ? '+e' : ''}`).join(';');
}
