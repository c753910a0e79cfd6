/** The status page's parts on their own: the plot, the hour-long ring, roles from the election, escaping and the page's CSP. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ListenerHistory, buildLiveStatus } from '../../../src/metrics/listener-history.ts';
import { liveFromSnapshot, type LiveStatus } from '../../../src/ipc/live-status.ts';
import { NO_STREAM_INFO, type Snapshot } from '../../../src/ipc/snapshot.ts';
import { plotSvg } from '../../../src/proxy/plot.ts';
import { PAGE_HEADERS, liveFragments, statusPage } from '../../../src/proxy/status-page.ts';

function snap(): Snapshot {
  const node = (name: string, over = {}) => ({
    slot: 0, name, addresses: ['10.0.0.1'], httpPort: 80, dnsPort: 53, icecastPort: 8000, icecastInternalPort: 8001, httpsPort: 0,
    alive: true, master: name === 'a', icecastReady: true, etcdHealthy: true, proxy: true, listeners: 3, bandwidthKbps: 384, maxListeners: 0, bandwidthLimitKbps: 0, ...over,
  });
  return {
    seq: 1, contentVersion: 1, etcdConnected: true, stateLoaded: true, draining: false, outOfService: false, etcdSeenAt: 0, self: 'a', master: 'a', dropped: 0, zoneSerial: 1,
    nodes: [node('a'), node('b'), node('c', { icecastReady: false })],
    mounts: [{
      slot: 0, path: '/live.ogg', relay: false, transcoded: false, fallbackPath: null, sourceConnected: true, listeners: 5, readyOn: ['a'],
      info: { ...NO_STREAM_INFO, title: '<script>alert(1)</script> & "Hits"', name: 'Radio <b>' }, credential: 'ab', kickedAt: 0,
    }],
    credentialSalt: '00',
  };
}

describe('status page parts', () => {
  it('plot the last hour from the right, scaled to the largest count', () => {
    const svg = plotSvg([0, 2, 4], 30);
    const pts = /<polyline class="line" points="([^"]+)"/.exec(svg)![1]!.split(' ').map((p) => p.split(',').map(Number));
    assert.equal(pts.length, 3);
    assert.equal(pts.at(-1)![0], 360, 'now is at the right edge');
    assert.equal(pts.at(-1)![1], 14, 'the largest count reaches the top');
    assert.equal(pts[0]![1], 72, 'zero lies on the axis');
    assert.match(svg, />4 max</);
    assert.match(svg, />last 60 min</);
    assert.doesNotMatch(plotSvg([], 30), /polyline/);
    assert.equal(/<polyline class="line" points="([^"]+)"/.exec(plotSvg(Array.from({ length: 121 }, (_, i) => i), 30))![1]!.split(' ')[0], '0,72');
  });

  it('keep an hour of samples per mount, and forget mounts that are gone', () => {
    const h = new ListenerHistory(3);
    for (let i = 0; i < 5; i++) h.sample([{ path: '/a', listeners: i }, ...(i < 2 ? [{ path: '/b', listeners: 9 }] : [])]);
    assert.deepEqual(h.series('/a'), [2, 3, 4]);
    assert.deepEqual(h.series('/b'), []);
  });

  it('name master, standby and relays from the election, and listeners per node', () => {
    const h = new ListenerHistory();
    h.sample([{ path: '/live.ogg', listeners: 1 }]);
    const live = buildLiveStatus(snap(), ['a', 'c', 'b'], (n) => ({ a: 2, b: 0, c: 3 })[n] ?? 0, h, 7);
    assert.deepEqual(live.nodes.map((n) => [n.name, n.role, n.health]), [['a', 'master', 'serving'], ['b', 'relay', 'serving'], ['c', 'standby', 'icecast down']]);
    assert.deepEqual(live.mounts[0]!.perNode, [['a', 2], ['c', 3]]);
    assert.deepEqual(live.mounts[0]!.history, [1, 5], 'the last point is now');
  });

  it('escape what sources send, and allow only their own script and style', () => {
    const live: LiveStatus = liveFromSnapshot(snap());
    const page = statusPage(live, 'radio.test', 'a');
    assert.doesNotMatch(page, /<script>alert/);
    assert.match(page, /&lt;script&gt;alert\(1\)&lt;\/script&gt; &amp; &quot;Hits&quot;/);
    assert.match(page, /<audio controls preload="none" src="\/live\.ogg"><\/audio>/);
    assert.doesNotMatch(liveFragments(live, 'radio.test', 'a'), /<script>alert/);
    const csp = PAGE_HEADERS.find(([k]) => k === 'Content-Security-Policy')![1];
    assert.match(csp, /default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+';/);
    assert.doesNotMatch(page, /<(?:script|link|img)[^>]+(?:src|href)=/i, 'nothing loaded from elsewhere');
  });
});
