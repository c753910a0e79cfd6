/**
 * etcd servers for the harness and the tests: a lone member on free ports,
 * or the members of one cluster, one per node address. A member keeps its
 * data directory across kill and start, so a restarted member rejoins.
 */
import { readFileSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import { join } from 'node:path';
import { freePortPair, waitFor } from './net.ts';
import { run, tempDir, type Proc } from './process.ts';

export interface Etcd {
  url: string;
  proc: Proc;
  dir: string;
  stop: () => Promise<void>;
}

/** A single-member etcd on free ports of `host`; with `tls`, it requires client certificates. */
export async function startEtcd(host = '127.0.0.1', tls?: MemberTls): Promise<Etcd> {
  const port = await freePortPair(host);
  const dir = tempDir('etcd');
  const member = new EtcdMember({ name: 'test', host, clientPort: port, peerPort: port + 1, dataDir: dir, cluster: [], ...(tls ? { tls } : {}) });
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

/** PEM files for a member that speaks TLS and requires client certificates (scripts/etcd-certs.sh makes them). */
export interface MemberTls {
  ca: string;
  /** The member's certificate, for its client and peer ports (and as a client of itself). */
  cert: string;
  key: string;
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
  tls?: MemberTls;
}

export class EtcdMember {
  readonly spec: MemberSpec;
  proc: Proc | null = null;

  constructor(spec: MemberSpec) {
    this.spec = spec;
  }

  get url(): string {
    return `${this.spec.tls ? 'https' : 'http'}://${this.spec.host}:${this.spec.clientPort}`;
  }

  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  async start(): Promise<void> {
    const s = this.spec;
    const peer = (h: string, p: number): string => `${s.tls ? 'https' : 'http'}://${h}:${p}`;
    // The same flags an operator sets in /etc/default/etcd (docs/cluster.md).
    const tls = s.tls
      ? [
        '--cert-file', s.tls.cert, '--key-file', s.tls.key, '--trusted-ca-file', s.tls.ca, '--client-cert-auth',
        '--peer-cert-file', s.tls.cert, '--peer-key-file', s.tls.key, '--peer-trusted-ca-file', s.tls.ca, '--peer-client-cert-auth',
      ]
      : [];
    const cluster = s.cluster.length > 0 ? s.cluster : [{ name: s.name, host: s.host, peerPort: s.peerPort }];
    this.proc = run('etcd', [
      '--name', s.name, '--data-dir', join(s.dataDir),
      '--listen-client-urls', this.url, '--advertise-client-urls', this.url,
      '--listen-peer-urls', peer(s.host, s.peerPort), '--initial-advertise-peer-urls', peer(s.host, s.peerPort),
      '--initial-cluster', cluster.map((m) => `${m.name}=${peer(m.host, m.peerPort)}`).join(','),
      '--initial-cluster-token', 'radioai-harness', '--initial-cluster-state', 'new',
      '--log-level', 'error', '--logger', 'zap', ...tls,
    ], {}, s.logFile !== undefined ? { logFile: s.logFile } : {});
    await new Promise((r) => setImmediate(r));
  }

  /** Waits until the member reports itself healthy (it is part of a quorum). */
  async healthy(timeoutMs: number): Promise<void> {
    await waitFor(async () => {
      if (this.spec.tls) return (await this.#tlsHealth()).includes('"health":"true"');
      const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    }, timeoutMs, `etcd member ${this.spec.name} healthy`, 100);
  }

  /** /health over TLS, presenting the member's own certificate (it carries clientAuth too). */
  #tlsHealth(): Promise<string> {
    const t = this.spec.tls!;
    return new Promise((resolve) => {
      const req = get(`${this.url}/health`, { ca: readFileSync(t.ca), cert: readFileSync(t.cert), key: readFileSync(t.key), timeout: 1000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
        res.on('error', () => resolve(''));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(''));
    });
  }

  /** kill -9, as a crash. */
  async kill(): Promise<void> {
    await this.proc?.kill('SIGKILL');
  }
}
