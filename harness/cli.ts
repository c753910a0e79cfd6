/**
 * npm run cluster -- up|down|status [options]
 *
 * Runs a radioai cluster on this machine (see cluster.ts): `up` starts it
 * and returns, leaving it running; `status` shows each node; `down` stops
 * everything `up` started. The cluster lives in --dir (state.json, logs,
 * data).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Cluster, downFromState, joinEtcdServer, nthAddress, startNodeRadiod, type ClusterPorts, type ClusterState } from './cluster.ts';
import { alive, httpGet } from './net.ts';
import { radioctl } from './radiod.ts';

const USAGE = `usage: npm run cluster -- up|join|down|status [options]

  up      start the cluster and return, leaving it running
  join    add a node with no etcd member and no etcd address: it finds
          etcd as etcd.DOMAIN through the first node's DNS
  status  each node's health and radioctl status
  down    stop everything up and join started

  --nodes N           nodes (default 3), on FIRST, FIRST+1, ...
  --first-address A   first node's address (default 127.0.0.1)
  --http-port P       default 80 as root, else 8080
  --dns-port P        default 53 as root, else 5353
  --icecast-port P    default 8000 (Icecast itself on P+1)
  --etcd-port P       etcd client port (default 2379; peers on P+1)
  --domain D          default radio.test
  --lease-ttl S       default 3
  --workers N         worker threads per node (default 2)
  --dir DIR           default /tmp/radioai-cluster
`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        nodes: { type: 'string', default: '3' },
        'first-address': { type: 'string', default: '127.0.0.1' },
        'http-port': { type: 'string' },
        'dns-port': { type: 'string' },
        'icecast-port': { type: 'string', default: '8000' },
        'etcd-port': { type: 'string', default: '2379' },
        domain: { type: 'string', default: 'radio.test' },
        'lease-ttl': { type: 'string', default: '3' },
        workers: { type: 'string', default: '2' },
        dir: { type: 'string', default: '/tmp/radioai-cluster' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 1;
  }
  const { values: v, positionals } = parsed;
  const cmd = positionals[0];
  if (v.help || cmd === undefined || !['up', 'join', 'down', 'status'].includes(cmd)) {
    process.stderr.write(USAGE);
    return v.help ? 0 : 1;
  }
  const dir = v.dir;
  const stateFile = `${dir}/state.json`;
  const readState = (): ClusterState | null => (existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) as ClusterState : null);

  if (cmd === 'down') {
    const st = readState();
    if (!st) {
      process.stdout.write(`no cluster in ${dir}\n`);
      return 0;
    }
    const ended = await downFromState(dir, st);
    process.stdout.write(`stopped: ${ended.length > 0 ? ended.join(', ') : 'nothing was running'}\n`);
    return 0;
  }
  if (cmd === 'status') {
    const st = readState();
    if (!st) {
      process.stdout.write(`no cluster in ${dir}\n`);
      return 3;
    }
    return status(st);
  }

  if (cmd === 'join') {
    const st = readState();
    if (!st) {
      process.stderr.write(`no cluster in ${dir}; run "npm run cluster -- up" first\n`);
      return 1;
    }
    return join(dir, st);
  }
  if (readState()) {
    process.stderr.write(`a cluster is already up in ${dir}; run "npm run cluster -- down" first\n`);
    return 1;
  }
  const num = (name: string, s: string | undefined, dflt: number): number => {
    const n = s === undefined ? dflt : Number(s);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`--${name} must be an integer from 1 to 65535, got ${s}`);
    return n;
  };
  const root = process.getuid?.() === 0;
  let ports: ClusterPorts;
  let size: number;
  try {
    const icecast = num('icecast-port', v['icecast-port'], 8000);
    const etcd = num('etcd-port', v['etcd-port'], 2379);
    ports = {
      http: num('http-port', v['http-port'], root ? 80 : 8080),
      dns: num('dns-port', v['dns-port'], root ? 53 : 5353),
      icecast, icecastInternal: icecast + 1, etcdClient: etcd, etcdPeer: etcd + 1,
    };
    size = num('nodes', v.nodes, 3);
    if (size > 20) throw new Error('--nodes: at most 20 on one machine');
    num('lease-ttl', v['lease-ttl'], 3);
    num('workers', v.workers, 2);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`starting ${size} nodes on ${v['first-address']} .. ${nthAddress(v['first-address'], size - 1)} in ${dir}\n`);
  let c: Cluster;
  try {
    c = await Cluster.up({
      dir, size, firstAddress: v['first-address'], ports, domain: v.domain,
      leaseTtl: Number(v['lease-ttl']), workers: Number(v.workers), detached: true,
    });
  } catch (err) {
    process.stderr.write(`cluster did not come up: ${(err as Error).message}\n`);
    return 1;
  }
  const etcd = c.etcdUrls.join(',');
  const h = c.nodes[0]!.host;
  const p = (port: number, dflt: number): string => (port === dflt ? '' : `:${port}`);
  process.stdout.write(`${c.nodes.map((n) => `${n.name}  ${n.host}  radiod pid ${n.radiod?.proc.pid}  etcd pid ${n.member?.pid}`).join('\n')}

up. Try:
  bin/radioctl --etcd ${etcd} create-mount /live.ogg
  ffmpeg -re -f lavfi -i sine=frequency=440 -c:a libvorbis -content_type application/ogg -f ogg icecast://USER:PASS@${h}:${ports.icecast}/live.ogg
  curl -o /dev/null http://${h}${p(ports.http, 80)}/live.ogg
  dig @${h} -p ${ports.dns} stream.${v.domain} +short
  npm run cluster -- status${dir === '/tmp/radioai-cluster' ? '' : ` --dir ${dir}`}
logs: ${dir}/*.log
`);
  return 0;
}

/** `join`: one more node on the next address that bootstraps through DNS; recorded in state.json for status and down. */
async function join(dir: string, st: ClusterState): Promise<number> {
  const first = st.nodes[0]!;
  const index = st.nodes.length;
  const name = `node${index + 1}`;
  const host = nthAddress(first.host, index);
  const dataDir = `${dir}/${name}`;
  mkdirSync(dataDir, { recursive: true });
  const etcd = joinEtcdServer(st.domain, st.ports.etcdClient);
  const resolver = `${first.host}:${st.ports.dns}`;
  process.stdout.write(`starting ${name} on ${host} with ETCD_SERVER=${etcd} RESOLVER=${resolver}\n`);
  try {
    const r = await startNodeRadiod({
      dir, domain: st.domain, ports: st.ports, leaseTtl: st.leaseTtl ?? 3, workers: st.workers ?? 2, detached: true, extraArgs: [],
      nameservers: st.nodes.filter((n) => n.etcdPid !== null).map((n) => n.name), etcd, resolver,
    }, { name, host, dataDir }, 30_000);
    st.nodes.push({ name, host, dataDir, radiodPid: r.proc.pid, etcdPid: null });
    writeFileSync(`${dir}/state.json`, `${JSON.stringify(st, null, 2)}\n`);
    process.stdout.write(`${name}  ${host}  radiod pid ${r.proc.pid}: joined; its log says where etcd.${st.domain} pointed (${dir}/${name}-radiod.log)\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${name} did not join: ${(err as Error).message}\n`);
    return 1;
  }
}

async function status(st: ClusterState): Promise<number> {
  let bad = 0;
  for (const n of st.nodes) {
    let health = 'no answer';
    try {
      const res = await httpGet(`http://${n.host}:${st.ports.http}/health`, 2000);
      const b = JSON.parse(res.body) as Record<string, unknown>;
      health = `${res.status} ${String(b.status)} role=${String(b.role)} etcd=${String(b.etcd)} icecast=${String(b.icecast)} nodes=${String(b.nodes)}`;
      if (res.status !== 200) bad++;
    } catch {
      bad++;
    }
    const up = (pid: number | null): string => (pid !== null && alive(pid) ? `pid ${pid}` : 'not running');
    process.stdout.write(`${n.name}  ${n.host}  radiod ${up(n.radiodPid)}  etcd ${n.etcdPid === null ? 'none (joined through DNS)' : up(n.etcdPid)}  health ${health}\n`);
  }
  const res = await radioctl(st.etcd.join(','), ['status']);
  process.stdout.write(`\n${res.stdout}${res.stderr}`);
  return bad > 0 || res.code !== 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
