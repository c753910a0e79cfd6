/**
 * `playlist` and `status`: small answers served from the snapshot. radiod
 * (the redirect-mode node, one worker) against nginx (one worker) serving
 * the same bytes from a file, with the same autocannon load in one run.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpGet } from '../harness/net.ts';
import { MOUNT, type Cluster } from './cluster.ts';
import { load, startNginx, type LoadResult } from './redirect.ts';

async function pageBench(cluster: Cluster, path: string, label: string, type: string): Promise<LoadResult[]> {
  const node = cluster.redirector;
  const url = `http://${node.host}:${node.httpPort}${path}`;
  const check = await httpGet(url);
  if (check.status !== 200 || check.body.length === 0) throw new Error(`radiod ${path}: ${check.status}`);
  const nginx = await startNginx(`default_type ${type}; location / { root DIR/www; }`, '/', () => true);
  const file = path === '/' ? 'index.html' : path.slice(1);
  // nginx's worker runs as nobody when started by root.
  chmodSync(nginx.dir, 0o755);
  mkdirSync(join(nginx.dir, 'www'), { recursive: true, mode: 0o755 });
  writeFileSync(join(nginx.dir, 'www', file), check.body);
  try {
    const peer = await httpGet(`${nginx.base}${path}`);
    if (peer.status !== 200 || peer.body !== check.body) throw new Error(`nginx ${path}: ${peer.status}`);
    return [
      await load(`radiod ${label} (1 worker)`, url, [node.proc.pid]),
      await load(`nginx static file (1 worker)`, `${nginx.base}${path}`, nginx.pids()),
    ];
  } finally {
    await nginx.stop();
  }
}

export const playlistBench = (c: Cluster): Promise<LoadResult[]> => pageBench(c, `${MOUNT}.m3u`, 'playlist', 'audio/x-mpegurl');
export const statusBench = (c: Cluster): Promise<LoadResult[]> => pageBench(c, '/', 'status page', 'text/html');
