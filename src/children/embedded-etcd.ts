/**
 * The single-member etcd that radiod runs when ETCD_SERVER is empty: the
 * Debian `etcd` binary with its data under DATA_DIR/etcd, client port on
 * 127.0.0.1:EMBEDDED_ETCD_PORT and peer port one above, supervised like any
 * other child and stopped when radiod stops. A radiod that is root runs it
 * as the unprivileged user its other children run as (child-user.ts), which
 * then owns the data directory: it binds only 127.0.0.1 ports above 1024,
 * and everything it holds is open to any local process through its
 * unauthenticated loopback port anyway, so root would add nothing but risk.
 */
import { join } from 'node:path';
import type { Logger } from '../core/log.ts';
import { SupervisedChild } from './child-process.ts';
import { childUser } from './child-user.ts';
import { canSearch, childDir, firstAncestor } from './private-files.ts';
import { etcdAt, parseEndpoint } from '../state/etcd-probe.ts';

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
  const user = childUser();
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
    user,
    cwd: dir,
  });
  if (user) {
    child.log.info(`runs as ${user.name}:${user.group}`);
    const closed = firstAncestor(opts.dataDir, (p) => !canSearch(p, user));
    if (closed !== null) child.log.error(`${closed} is not searchable by ${user.name}, so etcd cannot reach its data; chmod o+x ${closed}`);
  }
  await child.reapOrphan();
  // Data an earlier radiod's etcd left as root becomes the user's.
  childDir(dir, user, 0o700);
  return child;
}

/**
 * With no ETCD_SERVER: the embedded etcd, started, unless an etcd already
 * answers on its port. Debian's etcd service (etcd-server, which the
 * package depends on) listens on 127.0.0.1:2379 too, and a node with a
 * running system etcd uses it: null then.
 */
export async function startEmbeddedEtcd(o: { dataDir: string; clientPort: number }, log: Logger): Promise<SupervisedChild | null> {
  const etcd = await embeddedEtcd(o);
  const held = await etcdAt(parseEndpoint(`http://127.0.0.1:${o.clientPort}`), 1000);
  if (held === 'etcd') {
    log.info(`an etcd already serves 127.0.0.1:${o.clientPort} (the system's etcd service); using it instead of starting one`);
    return null;
  }
  if (held === 'other') log.error(`127.0.0.1:${o.clientPort} is taken by something that is not etcd; set EMBEDDED_ETCD_PORT to a free port, or ETCD_SERVER`);
  etcd.on('start', (pid) => log.info(`embedded etcd running (pid ${pid}) on 127.0.0.1:${o.clientPort}`));
  etcd.start();
  return etcd;
}
