/**
 * Starts the real components for tests: an etcd server, radiod, radioctl.
 * Everything runs on loopback and free ports and is ended by PID in after().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { get, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, freePort, freePortPair, waitFor } from './net.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const NODE = process.execPath;

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory, removed when the test process ends. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `radioai-${prefix}-`));
  tempDirs.push(d);
  return d;
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill: (sig?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    pid: child.pid!,
    output: () => out,
    exited,
    kill: async (sig: NodeJS.Signals = 'SIGTERM') => {
      if (alive(child.pid!)) child.kill(sig);
      return exited;
    },
  };
}

export interface Etcd {
  url: string;
  proc: Proc;
  dir: string;
  stop: () => Promise<void>;
}

export async function startEtcd(host = '127.0.0.1'): Promise<Etcd> {
  const port = await freePortPair(host);
  const dir = tempDir('etcd');
  const url = `http://${host}:${port}`;
  const proc = run('etcd', [
    '--name', 'test', '--data-dir', dir,
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', `http://${host}:${port + 1}`, '--initial-advertise-peer-urls', `http://${host}:${port + 1}`,
    '--initial-cluster', `test=http://${host}:${port + 1}`, '--log-level', 'error', '--logger', 'zap',
  ]);
  await waitFor(async () => (await fetch(`${url}/health`)).ok, 15_000, 'etcd health');
  return {
    url, proc, dir,
    stop: async () => {
      await proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One GET on a new connection (no keep-alive), so that SO_REUSEPORT spreads requests over the workers. */
export function httpGet(url: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The PID a radiod child left in its PID file, or null. */
export function pidFrom(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export interface Radiod {
  proc: Proc;
  /** SIGTERM, SIGKILL after 10 s, then the embedded etcd by its PID file if it survived; removes the data dir. */
  stop: () => Promise<void>;
  name: string;
  host: string;
  httpPort: number;
  icecastPort: number;
  dnsPort: number;
  /** The node's own Icecast, behind the door. */
  icecastInternalPort: number;
  dataDir: string;
  health: () => Promise<{ status: number; body: Record<string, unknown> }>;
}

export interface RadiodOptions {
  name: string;
  host?: string;
  etcd?: string;
  workers?: number;
  leaseTtl?: number;
  dataDir?: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

export async function startRadiod(o: RadiodOptions): Promise<Radiod> {
  const host = o.host ?? '127.0.0.1';
  const httpPort = await freePort(host);
  const dataDir = o.dataDir ?? tempDir('data');
  // Icecast drops to nobody and must reach its files below the data dir, as under /var/lib.
  chmodSync(dataDir, 0o755);
  const icecastPort = await freePort(host);
  const icecastInternalPort = await freePort(host);
  const dnsPort = await freePort(host);
  const args = [
    '--domain', 'radio.test', '--name', o.name, '--public-ip', host,
    '--http-port', String(httpPort), '--dns-port', String(dnsPort), '--icecast-port', String(icecastPort), '--icecast-internal-port', String(icecastInternalPort),
    '--workers', String(o.workers ?? 2), '--lease-ttl', String(o.leaseTtl ?? 2), '--statsd', '',
    '--data-dir', dataDir,
    ...(o.etcd !== undefined ? ['--etcd', o.etcd] : ['--embedded-etcd-port', String(await freePortPair())]),
    ...(o.extraArgs ?? []),
  ];
  const proc = run(join(ROOT, 'bin/radiod'), args, { RADIOAI_CONFIG: '/dev/null', ...o.env });
  const health = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await httpGet(`http://${host}:${httpPort}/health`);
    return { status: res.status, body: JSON.parse(res.body) as Record<string, unknown> };
  };
  const stop = async (): Promise<void> => {
    if (alive(proc.pid)) {
      proc.child.kill('SIGTERM');
      const t = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
      await proc.exited;
      clearTimeout(t);
    }
    let liq: string[] = [];
    try {
      liq = readdirSync(join(dataDir, 'liquidsoap')).filter((f) => f.endsWith('.pid')).map((f) => join('liquidsoap', f));
    } catch {
      // No transcoder ran here.
    }
    for (const file of ['etcd.pid', 'icecast.pid', ...liq]) {
      const pid = pidFrom(join(dataDir, file));
      if (pid !== null && alive(pid)) process.kill(pid, 'SIGKILL');
    }
    if (o.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await health()).status === 200, 20_000, `radiod ${o.name} healthy`);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- radiod output ---\n${proc.output()}`);
  }
  return { proc, stop, name: o.name, host, httpPort, icecastPort, dnsPort, icecastInternalPort, dataDir, health };
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
