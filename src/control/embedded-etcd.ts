/**
 * The single-member etcd that radiod runs when ETCD_SERVER is empty: the
 * Debian `etcd` binary with its data under DATA_DIR/etcd, client port on
 * 127.0.0.1:EMBEDDED_ETCD_PORT and peer port one above, supervised like any
 * other child and stopped when radiod stops.
 */
import { mkdirSync } from 'node:fs';
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
    pidFile,
    ownedIf: ` ${dir} `,
  });
  await child.reapOrphan();
  return child;
}
