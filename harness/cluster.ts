/**
 * A radioai cluster on one machine: node i (1..N) owns the address
 * FIRST+i-1 (127.0.0.1, 127.0.0.2, ...), with its own etcd member (the
 * members form one etcd cluster), its own radiod and, under it, its own
 * Icecast. Every radiod knows every member's client URL. With `cuttable`,
 * a node reaches the members through TCP proxies on its own address that
 * the caller can cut and restore, to take its link to etcd away without
 * touching etcd.
 *
 * `npm run cluster` (cli.ts) and the fault tests drive the same class.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdMember } from './etcd.ts';
import { freePortOn, listening } from './net.ts';
import { gone, killPid, pidFrom } from './process.ts';
import { childPidFiles, startRadiod, type Radiod, type RadiodPorts } from './radiod.ts';
import { TcpProxy } from './tcp-proxy.ts';

export interface ClusterPorts extends RadiodPorts {
  etcdClient: number;
  etcdPeer: number;
}

export interface ClusterOptions {
  /** Holds each node's data dir, the etcd members' data and, when detached, logs and state.json. */
  dir: string;
  size?: number;
  firstAddress?: string;
  /** The same ports on every address, or free ones picked per cluster. */
  ports?: ClusterPorts | 'free';
  domain?: string;
  leaseTtl?: number;
  workers?: number;
  /** Processes write to log files under `dir` and outlive this one. */
  detached?: boolean;
  /** Each node reaches etcd through proxies that cut()/restore() control. */
  cuttable?: boolean;
  extraArgs?: string[];
}

export interface ClusterNode {
  index: number;
  name: string;
  host: string;
  dataDir: string;
  /** Its etcd member; null for a node that joined through DNS (`join`). */
  member: EtcdMember | null;
  radiod: Radiod | null;
  proxies: TcpProxy[];
}

/** What `down` and `status` need after the process that ran `up` is gone. */
export interface ClusterState {
  domain: string;
  ports: ClusterPorts;
  etcd: string[];
  leaseTtl?: number;
  workers?: number;
  nodes: { name: string; host: string; dataDir: string; radiodPid: number | null; etcdPid: number | null }[];
}

export interface NodeRadiodSpec {
  dir: string;
  domain: string;
  ports: ClusterPorts;
  leaseTtl: number;
  workers: number;
  detached: boolean;
  extraArgs: string[];
  nameservers: string[];
  etcd: string;
  /** RESOLVER for a node that looks etcd up by name. */
  resolver: string | null;
}

/** A cluster node's radiod: the standard ports on its own address, logs under `dir` when detached. */
export function startNodeRadiod(s: NodeRadiodSpec, n: { name: string; host: string; dataDir: string }, readyMs: number): Promise<Radiod> {
  return startRadiod({
    name: n.name, host: n.host, etcd: s.etcd, ports: s.ports, dataDir: n.dataDir, domain: s.domain,
    workers: s.workers, leaseTtl: s.leaseTtl, readyMs,
    // The harness's etcd speaks plain text on loopback: a node that finds it by name must be told that is meant.
    extraArgs: ['--nameservers', s.nameservers.join(','), ...(s.resolver !== null ? ['--resolver', s.resolver, '--etcd-allow-plaintext'] : []), ...s.extraArgs],
    ...(s.detached ? { logFile: join(s.dir, `${n.name}-radiod.log`) } : {}),
  });
}

/** ETCD_SERVER for a node that finds etcd through the cluster's DNS. */
export function joinEtcdServer(domain: string, etcdClientPort: number): string {
  return etcdClientPort === 2379 ? `etcd.${domain}` : `etcd.${domain}:${etcdClientPort}`;
}

/** Address `i` places after `first` (IPv4 only: 127.0.0.0/8 has room). */
export function nthAddress(first: string, i: number): string {
  const n = first.split('.').reduce((a, x) => a * 256 + Number(x), 0) + i;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export class Cluster {
  readonly o: Required<Omit<ClusterOptions, 'ports' | 'extraArgs'>> & { extraArgs: string[] };
  readonly ports: ClusterPorts;
  readonly nodes: ClusterNode[];

  private constructor(o: ClusterOptions, ports: ClusterPorts) {
    this.o = {
      dir: o.dir, size: o.size ?? 3, firstAddress: o.firstAddress ?? '127.0.0.1', domain: o.domain ?? 'radio.test',
      leaseTtl: o.leaseTtl ?? 3, workers: o.workers ?? 2, detached: o.detached ?? false, cuttable: o.cuttable ?? false,
      extraArgs: o.extraArgs ?? [],
    };
    this.ports = ports;
    const hosts = Array.from({ length: this.o.size }, (_, i) => nthAddress(this.o.firstAddress, i));
    const cluster = hosts.map((host, i) => ({ name: `node${i + 1}`, host, peerPort: ports.etcdPeer }));
    this.nodes = hosts.map((host, i) => {
      const name = `node${i + 1}`;
      const dataDir = join(o.dir, name);
      return {
        index: i, name, host, dataDir,
        member: new EtcdMember({
          name, host, clientPort: ports.etcdClient, peerPort: ports.etcdPeer, dataDir: join(o.dir, 'etcd', name), cluster,
          ...(this.o.detached ? { logFile: join(o.dir, `${name}-etcd.log`) } : {}),
        }),
        radiod: null,
        proxies: [],
      };
    });
  }

  /** Starts every member and every radiod; resolves when all are healthy. */
  static async up(o: ClusterOptions): Promise<Cluster> {
    const size = o.size ?? 3;
    const first = o.firstAddress ?? '127.0.0.1';
    const hosts = Array.from({ length: size }, (_, i) => nthAddress(first, i));
    let ports: ClusterPorts;
    if (o.ports === undefined || o.ports === 'free') {
      const pick = (): Promise<number> => freePortOn(hosts);
      ports = { http: await pick(), dns: await pick(), icecast: await pick(), icecastInternal: await pick(), etcdClient: await pick(), etcdPeer: await pick() };
    } else {
      ports = o.ports;
      for (const h of hosts) {
        for (const [what, p] of Object.entries(ports) as [string, number][]) {
          if (await listening(h, p, 300)) throw new Error(`port ${p} (${what}) on ${h} is in use; choose another or stop what holds it`);
        }
      }
    }
    mkdirSync(o.dir, { recursive: true });
    // Icecast runs as nobody and must pass through here to its files.
    chmodSync(o.dir, 0o755);
    const c = new Cluster(o, ports);
    try {
      for (const n of c.nodes) mkdirSync(n.dataDir, { recursive: true });
      await Promise.all(c.nodes.map((n) => n.member!.start()));
      await Promise.all(c.nodes.map((n) => n.member!.healthy(30_000)));
      if (c.o.cuttable) {
        for (const n of c.nodes) {
          for (const m of c.nodes) {
            const p = new TcpProxy({ host: m.host, port: ports.etcdClient }, n.host);
            await p.start();
            n.proxies.push(p);
          }
        }
      }
      // The first node starts alone so that it is the master, as an operator would bring a cluster up.
      await c.startNode(0);
      await Promise.all(c.nodes.slice(1).map((n) => c.startNode(n.index)));
      c.save();
    } catch (err) {
      await c.down();
      throw err;
    }
    return c;
  }

  /** The etcd client URLs a node's radiod is given. */
  etcdFor(n: ClusterNode): string {
    if (n.member === null) return joinEtcdServer(this.o.domain, this.ports.etcdClient);
    return (n.proxies.length > 0 ? n.proxies.map((p) => p.url) : this.members.map((m) => m.url)).join(',');
  }

  get members(): EtcdMember[] {
    return this.nodes.flatMap((n) => (n.member ? [n.member] : []));
  }

  get etcdUrls(): string[] {
    return this.members.map((m) => m.url);
  }

  /** The nameservers every node serves as NS: the nodes that have an etcd member, as an operator delegates to the first ones. */
  get nameservers(): string[] {
    return this.nodes.filter((n) => n.member !== null).map((n) => n.name);
  }

  /** Starts (or starts again) node i's radiod on its data dir. */
  async startNode(i: number, readyMs = 30_000): Promise<Radiod> {
    const n = this.nodes[i]!;
    n.radiod = await startNodeRadiod({
      dir: this.o.dir, domain: this.o.domain, ports: this.ports, leaseTtl: this.o.leaseTtl, workers: this.o.workers,
      detached: this.o.detached, extraArgs: this.o.extraArgs, nameservers: this.nameservers,
      // A node without a member finds etcd as a new machine would: etcd.DOMAIN, asked of the first node's DNS.
      etcd: this.etcdFor(n), resolver: n.member === null ? `${this.nodes[0]!.host}:${this.ports.dns}` : null,
    }, n, readyMs);
    this.save();
    return n.radiod;
  }

  /**
   * Adds a node on the next address with no etcd member and no etcd
   * address given: its radiod looks up `etcd.DOMAIN` in the cluster's own
   * DNS (docs/cluster.md, "Procedure") and joins through what that returns.
   */
  async join(readyMs = 30_000): Promise<ClusterNode> {
    const index = this.nodes.length;
    const host = nthAddress(this.o.firstAddress, index);
    const name = `node${index + 1}`;
    const dataDir = join(this.o.dir, name);
    mkdirSync(dataDir, { recursive: true });
    const n: ClusterNode = { index, name, host, dataDir, member: null, radiod: null, proxies: [] };
    this.nodes.push(n);
    await this.startNode(index, readyMs);
    return n;
  }

  /** kill -9 of node i's radiod; with `icecast`, of its Icecast too (a crashed machine). */
  async crash(i: number, icecast = false): Promise<void> {
    const n = this.nodes[i]!;
    const icecastPid = pidFrom(join(n.dataDir, 'icecast.pid'));
    await n.radiod?.proc.kill('SIGKILL');
    if (icecast && killPid(icecastPid)) await gone(icecastPid!, 5000);
  }

  /** Takes node i's link to etcd away (needs `cuttable`). */
  async cut(i: number): Promise<void> {
    const n = this.nodes[i]!;
    if (n.proxies.length === 0) throw new Error('cut() needs a cluster started with cuttable: true');
    for (const p of n.proxies) await p.cut();
  }

  async restore(i: number): Promise<void> {
    for (const p of this.nodes[i]!.proxies) await p.restore();
  }

  state(): ClusterState {
    return {
      domain: this.o.domain,
      ports: this.ports,
      etcd: this.etcdUrls,
      leaseTtl: this.o.leaseTtl,
      workers: this.o.workers,
      nodes: this.nodes.map((n) => ({ name: n.name, host: n.host, dataDir: n.dataDir, radiodPid: n.radiod?.proc.pid ?? null, etcdPid: n.member?.pid ?? null })),
    };
  }

  save(): void {
    if (this.o.detached) writeFileSync(join(this.o.dir, 'state.json'), `${JSON.stringify(this.state(), null, 2)}\n`);
  }

  /** Stops everything this cluster started and removes its directory. */
  async down(): Promise<void> {
    await Promise.all(this.nodes.map((n) => (n.radiod ? n.radiod.stop() : Promise.resolve())));
    for (const n of this.nodes) {
      for (const p of n.proxies) await p.stop();
      await n.member?.kill();
    }
    rmSync(this.o.dir, { recursive: true, force: true });
  }
}

/**
 * `down` from a state file, for a cluster whose `up` ran in another
 * process: SIGTERM to every radiod (it stops its Icecast and liquidsoap),
 * SIGKILL after 10 s, then the etcd members and anything a PID file names.
 */
export async function downFromState(dir: string, st: ClusterState): Promise<string[]> {
  const ended: string[] = [];
  await Promise.all(st.nodes.map(async (n) => {
    if (killPid(n.radiodPid, 'SIGTERM')) {
      ended.push(`radiod ${n.name} (pid ${n.radiodPid})`);
      if (!(await gone(n.radiodPid!, 10_000))) killPid(n.radiodPid);
    }
  }));
  for (const n of st.nodes) {
    for (const f of childPidFiles(n.dataDir)) {
      const pid = pidFrom(f);
      if (killPid(pid)) ended.push(`${f} (pid ${pid})`);
    }
    if (killPid(n.etcdPid)) ended.push(`etcd ${n.name} (pid ${n.etcdPid})`);
  }
  for (const n of st.nodes) {
    for (const pid of [n.radiodPid, n.etcdPid]) if (pid !== null) await gone(pid, 5000);
  }
  rmSync(dir, { recursive: true, force: true });
  return ended;
}
