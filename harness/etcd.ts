/**
 * etcd servers for the harness and the tests: a lone member on free ports,
 * or the members of one cluster, one per node address. A member keeps its
 * data directory across kill and start, so a restarted member rejoins.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePortPair, waitFor } from './net.ts';
import { run, tempDir, type Proc } from './process.ts';

export interface Etcd {
  url: string;
  proc: Proc;
  dir: string;
  stop: () => Promise<void>;
}

/** A single-member etcd on free ports of `host`. */
export async function startEtcd(host = '127.0.0.1'): Promise<Etcd> {
  const port = await freePortPair(host);
  const dir = tempDir('etcd');
  const member = new EtcdMember({ name: 'test', host, clientPort: port, peerPort: port + 1, dataDir: dir, cluster: [] });
  await member.start();
  await member.healthy(15_000);
  return {
    url: member.url, proc: member.proc!, dir,
    stop: async () => {
      await member.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface MemberSpec {
  name: string;
  host: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  /** Every member of the cluster (this one included); empty for a lone member. */
  cluster: { name: string; host: string; peerPort: number }[];
  /** Output file; the member then outlives this process. */
  logFile?: string;
}

export class EtcdMember {
  readonly spec: MemberSpec;
  proc: Proc | null = null;

  constructor(spec: MemberSpec) {
    this.spec = spec;
  }

  get url(): string {
    return `http://${this.spec.host}:${this.spec.clientPort}`;
  }

  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  async start(): Promise<void> {
    const s = this.spec;
    const peer = (h: string, p: number): string => `http://${h}:${p}`;
    const cluster = s.cluster.length > 0 ? s.cluster : [{ name: s.name, host: s.host, peerPort: s.peerPort }];
    this.proc = run('etcd', [
      '--name', s.name, '--data-dir', join(s.dataDir),
      '--listen-client-urls', this.url, '--advertise-client-urls', this.url,
      '--listen-peer-urls', peer(s.host, s.peerPort), '--initial-advertise-peer-urls', peer(s.host, s.peerPort),
      '--initial-cluster', cluster.map((m) => `${m.name}=${peer(m.host, m.peerPort)}`).join(','),
      '--initial-cluster-token', 'radioai-harness', '--initial-cluster-state', 'new',
      '--log-level', 'error', '--logger', 'zap',
    ], {}, s.logFile !== undefined ? { logFile: s.logFile } : {});
    await new Promise((r) => setImmediate(r));
  }

  /** Waits until the member reports itself healthy (it is part of a quorum). */
  async healthy(timeoutMs: number): Promise<void> {
    await waitFor(async () => {
      const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    }, timeoutMs, `etcd member ${this.spec.name} healthy`, 100);
  }

  /** kill -9, as a crash. */
  async kill(): Promise<void> {
    await this.proc?.kill('SIGKILL');
  }
}
