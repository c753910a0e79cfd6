/**
 * GET /: a small HTML page of the cluster from the snapshot (which never
 * holds a password): nodes with their role and load, mounts with their
 * listeners, titles and where they are ready.
 */
import type { Snapshot } from '../shared/snapshot.ts';

const h = (s: string | number): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function statusPage(snap: Snapshot, domain: string, selfName: string): string {
  const nodes = snap.nodes.map((n) => `<tr><td>${h(n.name)}${n.name === selfName ? ' (this node)' : ''}</td><td>${n.name === snap.master ? 'master' : 'relay'}</td><td>${h(n.addresses.join(', '))}</td><td>${n.icecastReady ? 'ready' : 'down'}</td><td>${n.listeners}</td><td>${n.bandwidthKbps} kbit/s</td></tr>`).join('\n');
  const mounts = snap.mounts.map((m) => `<tr><td><a href="${h(m.path)}">${h(m.path)}</a> (<a href="${h(m.path)}.m3u">m3u</a>, <a href="${h(m.path)}.pls">pls</a>)</td><td>${m.sourceConnected ? 'on air' : 'off air'}</td><td>${h(m.info.title)}</td><td>${m.listeners}</td><td>${h(m.readyOn.join(', '))}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${h(domain)}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style></head>
<body><h1>${h(domain)}</h1>
<p>etcd: ${snap.etcdConnected ? 'connected' : 'unreachable'}; master: ${h(snap.master ?? 'none')}</p>
<h2>Nodes</h2>
<table><tr><th>node</th><th>role</th><th>addresses</th><th>icecast</th><th>listeners</th><th>outbound</th></tr>
${nodes}
</table>
<h2>Mounts</h2>
<table><tr><th>mount</th><th>source</th><th>now playing</th><th>listeners</th><th>ready on</th></tr>
${mounts}
</table>
</body></html>
`;
}
