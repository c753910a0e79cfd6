/**
 * The single-member etcd that radiod runs when ETCD_SERVER is empty: the
 * Debian `etcd` binary with its data under DATA_DIR/etcd, client port on
 * 127.0.0.1:EMBEDDED_ETCD_PORT and peer port one above, supervised like any
 * other child and stopped when radiod stops.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../core/log.ts';
import { SupervisedChild } from './child-process.ts';

export interface EmbeddedEtcdOptions {
  dataDir: string;
  clientPort: number;
  binary?: string;
}

/** etcd 3.4 logs one JSON object a line (zap); keep warnings and errors visible, the rest at debug. */
function etcdLine(line: string, log: Logger): void {
  let level = 'info';
  let msg = line;
  try {
    const o = JSON.parse(line) as { level?: string; msg?: string; error?: string };
    level = o.level ?? level;
    msg = (o.msg ?? line) + (o.error ? `: ${o.error}` : '');
  } catch {
    // Not JSON (e.g. a panic trace): log as is.
  }
  if (level === 'warn') log.warn(msg);
  else if (level === 'error' || level === 'fatal' || level === 'panic') log.error(msg);
  else log.debug(msg);
}

/**
 * A radiod killed with SIGKILL leaves its etcd running (outside systemd,
 * nothing kills the orphan). The PID file lets the next radiod on the same
 * data directory end that etcd, and only that one: the PID must still be an
 * etcd whose command line names this data directory.
 */
async function reapOrphan(pidFile: string, dir: string, log: Logger): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    // Gone already.
  }
  if (pid > 0 && /(^|\/)etcd /.test(cmdline) && cmdline.includes(` ${dir} `)) {
    log.warn(`ending etcd pid ${pid} left over from an earlier radiod on ${dir}`);
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Ended by the SIGTERM.
    }
  }
  rmSync(pidFile, { force: true });
}

export async function embeddedEtcd(opts: EmbeddedEtcdOptions): Promise<SupervisedChild> {
  const dir = join(opts.dataDir, 'etcd');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pidFile = join(opts.dataDir, 'etcd.pid');
  const client = `http://127.0.0.1:${opts.clientPort}`;
  const peer = `http://127.0.0.1:${opts.clientPort + 1}`;
  const child = new SupervisedChild({
    name: 'etcd',
    command: opts.binary ?? 'etcd',
    args: [
      '--name', 'radioai',
      '--data-dir', dir,
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `radioai=${peer}`,
      '--initial-cluster-state', 'new',
      // Node status is rewritten every second; keep the history short so the database stays small.
      '--auto-compaction-mode', 'revision',
      '--auto-compaction-retention', '10000',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
    ],
    onLine: etcdLine,
  });
  await reapOrphan(pidFile, dir, child.log);
  child.on('start', (pid) => writeFileSync(pidFile, `${pid}\n`));
  child.on('exit', () => rmSync(pidFile, { force: true }));
  return child;
}
