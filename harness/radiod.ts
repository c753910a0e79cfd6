/**
 * radiod processes for the harness and the tests, and radioctl runs against
 * an etcd. A node's ports are free ones unless given; stop() ends radiod and
 * then, by their PID files, whatever it left behind (etcd, Icecast,
 * liquidsoap).
 */
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { alive, freePort, freePortPair, httpGet, waitFor } from './net.ts';
import { ROOT, killPid, pidFrom, run, tempDir, type Proc } from './process.ts';

export interface Radiod {
  proc: Proc;
  /** SIGTERM, SIGKILL after 10 s, then the children it left by their PID files; removes a data dir it made. */
  stop: () => Promise<void>;
  name: string;
  host: string;
  httpPort: number;
  icecastPort: number;
  dnsPort: number;
  /** The node's own Icecast, behind the door. */
  icecastInternalPort: number;
  dataDir: string;
  /** Worker threads it runs. */
  workers: number;
  health: () => Promise<{ status: number; body: Record<string, unknown> }>;
}

export interface RadiodPorts {
  http: number;
  dns: number;
  icecast: number;
  icecastInternal: number;
}

export interface RadiodOptions {
  name: string;
  host?: string;
  /** ETCD_SERVER; without it radiod runs its embedded etcd on a free port. */
  etcd?: string;
  workers?: number;
  leaseTtl?: number;
  dataDir?: string;
  ports?: RadiodPorts;
  domain?: string;
  extraArgs?: string[];
  /** METRICS_ADDR; none unless given (several radiods share a machine here). */
  metricsAddr?: string;
  env?: NodeJS.ProcessEnv;
  /** Output file; radiod then outlives this process. */
  logFile?: string;
  /** How long to wait for /health to answer 200 (0: do not wait). */
  readyMs?: number;
}

/** The PID files of the children a radiod keeps under its data dir. */
export function childPidFiles(dataDir: string): string[] {
  let liq: string[] = [];
  try {
    liq = readdirSync(join(dataDir, 'liquidsoap')).filter((f) => f.endsWith('.pid')).map((f) => join(dataDir, 'liquidsoap', f));
  } catch {
    // No transcoder ran here.
  }
  return [join(dataDir, 'etcd.pid'), join(dataDir, 'icecast.pid'), ...liq];
}

/**
 * Four free ports, all different: the kernel may hand the same free port to
 * two lookups in a row, since each lookup's socket is closed before the next.
 */
async function distinctPorts(host: string): Promise<RadiodPorts> {
  const got: number[] = [];
  while (got.length < 4) {
    const p = await freePort(host);
    if (!got.includes(p)) got.push(p);
  }
  return { http: got[0]!, icecast: got[1]!, icecastInternal: got[2]!, dns: got[3]! };
}

export async function startRadiod(o: RadiodOptions): Promise<Radiod> {
  const host = o.host ?? '127.0.0.1';
  const ports = o.ports ?? await distinctPorts(host);
  const dataDir = o.dataDir ?? tempDir('data');
  // Icecast drops to nobody and must reach its files below the data dir, as under /var/lib.
  chmodSync(dataDir, 0o755);
  const args = [
    '--domain', o.domain ?? 'radio.test', '--name', o.name, '--public-ip', host,
    '--http-port', String(ports.http), '--dns-port', String(ports.dns), '--icecast-port', String(ports.icecast), '--icecast-internal-port', String(ports.icecastInternal),
    '--workers', String(o.workers ?? 2), '--lease-ttl', String(o.leaseTtl ?? 2), '--statsd', '', '--metrics-addr', o.metricsAddr ?? '',
    '--data-dir', dataDir,
    ...(o.etcd !== undefined ? ['--etcd', o.etcd] : ['--embedded-etcd-port', String(await freePortPair())]),
    ...(o.extraArgs ?? []),
  ];
  const proc = run(join(ROOT, 'bin/radiod'), args, { RADIOAI_CONFIG: '/dev/null', ...o.env }, o.logFile !== undefined ? { logFile: o.logFile } : {});
  const health = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await httpGet(`http://${host}:${ports.http}/health`);
    return { status: res.status, body: JSON.parse(res.body) as Record<string, unknown> };
  };
  const stop = async (): Promise<void> => {
    if (alive(proc.pid)) {
      proc.child.kill('SIGTERM');
      const t = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
      await proc.exited;
      clearTimeout(t);
    }
    for (const file of childPidFiles(dataDir)) killPid(pidFrom(file));
    if (o.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  const readyMs = o.readyMs ?? 20_000;
  if (readyMs > 0) {
    try {
      await waitFor(async () => (await health()).status === 200, readyMs, `radiod ${o.name} healthy`);
    } catch (err) {
      await stop();
      throw new Error(`${(err as Error).message}\n--- radiod output ---\n${proc.output()}`);
    }
  }
  return { proc, stop, name: o.name, host, httpPort: ports.http, icecastPort: ports.icecast, dnsPort: ports.dns, icecastInternalPort: ports.icecastInternal, dataDir, workers: o.workers ?? 2, health };
}

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function radioctl(etcd: string, args: string[], stdin?: string): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = spawn(join(ROOT, 'bin/radioctl'), ['--etcd', etcd, ...args], {
      env: { ...process.env, RADIOAI_CONFIG: '/dev/null' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(stdin ?? '');
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A mount's credentials as `radioctl --json create-mount` prints them. */
export interface Creds {
  path: string;
  username: string;
  password: string;
}

/** Runs a radioctl create command with --json; fails unless it succeeds. */
export async function createMount(etcd: string, args: string[]): Promise<Creds> {
  const res = await radioctl(etcd, ['--json', ...args]);
  if (res.code !== 0) throw new Error(`radioctl ${args.join(' ')}: ${res.stderr}`);
  return JSON.parse(res.stdout) as Creds;
}
