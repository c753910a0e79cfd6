/**
 * GET /: the cluster's live status page, rendered here from LiveStatus
 * (ipc/live-status.ts), which holds no password. Per mount: on air or
 * not, the title now playing, listeners in all and per node, a plot of the
 * last hour, and a player (an <audio> element with the mount as its
 * source, so the stream comes from the node and scheme the page came from).
 * Per node: its role, health, listeners and outbound rate.
 *
 * The page updates itself: its one inline script asks GET /status/live.json
 * every few seconds and puts the fragments it gets (rendered by the same
 * functions) in place, leaving each mount's player alone, so a stream
 * playing on the page is not interrupted. Without scripts, the page as
 * first served is complete. No external script, style or font; the
 * Content-Security-Policy allows the page's own script and style only.
 */
import { createHash } from 'node:crypto';
import type { LiveMount, LiveNode, LiveStatus } from '../ipc/live-status.ts';
import { plotSvg } from './plot.ts';

const h = (s: string | number): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** How often the page asks for new figures, ms. */
export const REFRESH_MS = 3000;

const STYLE = `body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{margin:0 0 .2em}header p{margin:.2em 0;color:#555}
.mount{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:.8em 0;max-width:44em}
.mount h3{margin:0 0 .3em;font-size:1.1em}.title{font-size:1.15em;margin:.2em 0}
.on{color:#0a7a2f}.off{color:#999}.per{color:#555;font-size:.9em}
.plot .axis{stroke:#bbb}.plot .line{fill:none;stroke:#2a6fdb;stroke-width:1.5}.plot .area{fill:#2a6fdb22;stroke:none}
.plot text{font-size:10px;fill:#777;font-family:sans-serif}
audio{width:100%;max-width:30em;margin-top:.4em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
.serving{color:#0a7a2f}.down{color:#b3261e}`;

/** Keeps the player of each mount; replaces everything else with what /status/live.json says. */
const SCRIPT = `(() => {
  const $ = (id) => document.getElementById(id);
  async function refresh() {
    try {
      const r = await fetch('/status/live.json', { cache: 'no-store' });
      if (r.ok) {
        const d = await r.json();
        $('head').innerHTML = d.head;
        $('nodes').innerHTML = d.nodes;
        const list = $('mounts');
        const seen = new Set();
        for (const m of d.mounts) {
          seen.add(m.path);
          let s = [...list.children].find((e) => e.dataset.path === m.path);
          if (!s) {
            s = document.createElement('section');
            s.className = 'mount';
            s.dataset.path = m.path;
            s.innerHTML = '<div class="live"></div>' + m.player;
            list.appendChild(s);
          }
          s.querySelector('.live').innerHTML = m.html;
        }
        for (const e of [...list.children]) if (!seen.has(e.dataset.path)) e.remove();
      }
    } catch (e) {
      // The node may be restarting: the next round asks again.
    }
    setTimeout(refresh, ${REFRESH_MS});
  }
  setTimeout(refresh, ${REFRESH_MS});
})();`;

const hash = (s: string): string => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

/** The status page's headers: its own inline script and style, the streams and figures of its own origin, nothing else. */
export const PAGE_HEADERS: [string, string][] = [
  ['Content-Type', 'text/html; charset=utf-8'],
  ['Cache-Control', 'no-cache'],
  ['Content-Security-Policy', `default-src 'none'; script-src ${hash(SCRIPT)}; style-src ${hash(STYLE)}; connect-src 'self'; media-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'`],
  ['X-Content-Type-Options', 'nosniff'],
];

function kbps(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} Mbit/s` : `${n} kbit/s`;
}

function head(live: LiveStatus, domain: string): string {
  const time = new Date(live.at).toISOString().slice(11, 19);
  return `<h1>${h(domain)}</h1><p>master: <b>${h(live.master ?? 'none')}</b> · etcd: ${live.etcd ? 'connected' : '<span class="down">unreachable</span>'} · `
    + `${live.mounts.reduce((a, m) => a + m.listeners, 0)} listeners · updated ${time} UTC</p>`;
}

function nodeRow(n: LiveNode, selfName: string): string {
  return `<tr><td>${h(n.name)}${n.name === selfName ? ' (this node)' : ''}</td><td>${n.role}</td><td class="${n.health === 'serving' ? 'serving' : 'down'}">${n.health}</td>`
    + `<td>${n.listeners}</td><td>${kbps(n.outKbps)}</td></tr>`;
}

function nodes(live: LiveStatus, selfName: string): string {
  return `<table><tr><th>node</th><th>role</th><th>health</th><th>listeners</th><th>outbound</th></tr>${live.nodes.map((n) => nodeRow(n, selfName)).join('')}</table>`;
}

function mountLive(m: LiveMount, stepSeconds: number): string {
  const per = m.perNode.map(([n, c]) => `${h(n)}: ${c}`).join(', ');
  const about = [m.name, m.contentType, m.bitrate > 0 ? `${m.bitrate} kbit/s` : ''].filter((s) => s !== '').map(h).join(' · ');
  return `<h3>${h(m.path)} <span class="${m.onAir ? 'on' : 'off'}">${m.onAir ? 'on air' : 'off air'}</span></h3>`
    + `<p class="title">${m.title !== '' ? h(m.title) : '<span class="off">no title</span>'}</p>`
    + (about !== '' ? `<p class="per">${about}</p>` : '')
    + `<p><b class="listeners">${m.listeners}</b> listener${m.listeners === 1 ? '' : 's'}${per !== '' ? ` <span class="per">(${per})</span>` : ''}</p>`
    + plotSvg(m.history, stepSeconds);
}

function mountPlayer(m: LiveMount): string {
  const p = h(m.path);
  return `<audio controls preload="none" src="${p}"></audio><p class="per"><a href="${p}">stream</a> · <a href="${p}.m3u">m3u</a> · <a href="${p}.pls">pls</a></p>`;
}

/** The whole page. */
export function statusPage(live: LiveStatus, domain: string, selfName: string): string {
  const mounts = live.mounts.map((m) => `<section class="mount" data-path="${h(m.path)}"><div class="live">${mountLive(m, live.stepSeconds)}</div>${mountPlayer(m)}</section>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${h(domain)}</title>
<style>${STYLE}</style></head>
<body><header id="head">${head(live, domain)}</header>
<h2>Mounts</h2>
<div id="mounts">
${mounts}
</div>
<h2>Nodes</h2>
<div id="nodes">${nodes(live, selfName)}</div>
<script>${SCRIPT}</script>
</body></html>
`;
}

/** GET /status/live.json: the page's parts to put in place. */
export function liveFragments(live: LiveStatus, domain: string, selfName: string): string {
  return JSON.stringify({
    at: live.at,
    head: head(live, domain),
    nodes: nodes(live, selfName),
    mounts: live.mounts.map((m) => ({ path: m.path, html: mountLive(m, live.stepSeconds), player: mountPlayer(m) })),
  });
}
