/**
 * The worker's hubs, one per mount with listeners, and the targets each
 * hub may pull from: the local Icecast when it has the mount, other nodes'
 * Icecast servers that have it (while the local one is down, or has not
 * picked up a mount that just went live elsewhere), and the local Icecast
 * last in any case (it may have the mount before the snapshot says so, and
 * serves a fallback mount in its place), then the master's Icecast, where
 * sources land (a source carried on to a new master is there a second or
 * two before any node reports it). A hub on another node's Icecast moves
 * back to the local one once it has the mount again.
 * Twice a second the listener counts go to this worker's stats row.
 */
import type { SnapshotReader } from '../ipc/snapshot-reader.ts';
import type { LatencyRecorder } from '../ipc/latency.ts';
import { S, type WorkerStats } from '../ipc/worker-stats.ts';
import { nodeIcecast, sameHostPort } from '../core/host-port.ts';
import { Hub } from './hub.ts';
import { REPLIES } from './answers.ts';
import type { Client, Session } from './hub-client.ts';
import type { Upstream } from './upstream-link.ts';
import { masterIcecast } from './source-forward.ts';

export interface HubsOptions {
  reader: SnapshotReader;
  stats: WorkerStats;
  nodeName: string;
  /** The local Icecast. */
  local: Upstream;
  burstBytes: number;
  queueBytes: number;
  latency?: LatencyRecorder;
}

export class Hubs {
  readonly #o: HubsOptions;
  readonly #hubs = new Map<string, Hub>();
  /** Bytes written to listeners not yet counted in the stats row. */
  #sent = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(o: HubsOptions) {
    this.#o = o;
    this.#timer = setInterval(() => this.report(), 500);
    this.#timer.unref();
  }

  get listeners(): number {
    let n = 0;
    for (const h of this.#hubs.values()) n += h.listeners;
    return n;
  }

  /** Upstreams for `path`, best first: the local Icecast when it has the mount, the others that have it, the local one. */
  targets(path: string): Upstream[] {
    const snap = this.#o.reader.current();
    const mount = snap.mounts.find((m) => m.path === path);
    const ready = new Set(mount?.readyOn ?? []);
    const out: Upstream[] = [];
    for (const n of snap.nodes) {
      if (n.name === this.#o.nodeName || !ready.has(n.name) || !n.icecastReady) continue;
      const up = nodeIcecast(n);
      // The master's first: a relay node's copy goes when the master does.
      if (up && n.name === snap.master) out.unshift(up);
      else if (up) out.push(up);
    }
    if (ready.has(this.#o.nodeName)) out.unshift(this.#o.local);
    else out.push(this.#o.local);
    // Sources land on the master's Icecast, first of all: the snapshot lags a source that has
    // just connected (or been carried on to a new master) by a second or two, so it is always
    // among the places to look, last.
    const master = snap.master === this.#o.nodeName ? null : masterIcecast(snap);
    if (master && !out.some((u) => sameHostPort(u, master))) out.push(master);
    return out;
  }

  /** Whether `path` is still a mount (a snapshot not loaded yet knows of none, so it does not say no). */
  exists(path: string): boolean {
    const snap = this.#o.reader.current();
    return !snap.stateLoaded || snap.mounts.some((m) => m.path === path);
  }

  /** The local Icecast once the snapshot says it has `path` live: a hub on another node's moves back to it. */
  home(path: string): Upstream | null {
    const mount = this.#o.reader.current().mounts.find((m) => m.path === path);
    return mount?.readyOn.includes(this.#o.nodeName) ? this.#o.local : null;
  }

  listen(path: string, client: Client): void {
    let hub = this.#hubs.get(path);
    if (!hub || hub.closed) {
      // Declared first: a hub whose mount is already gone closes inside its constructor.
      let h: Hub | null = null;
      h = new Hub({
        path,
        // A listener of a mount that is not live (or not yet, as far as the snapshot knows) waits this long.
        pendingMs: 3000,
        burstBytes: this.#o.burstBytes,
        queueBytes: this.#o.queueBytes,
        targets: () => this.targets(path),
        exists: () => this.exists(path),
        home: () => this.home(path),
        onClosed: () => {
          if (this.#hubs.get(path) === h) this.#hubs.delete(path);
        },
        onSent: (n) => {
          this.#sent += n;
        },
        onReconnect: (gapMs) => {
          this.#o.stats.add(S.UPSTREAM_RECONNECTS, 1);
          this.#o.stats.set(S.LAST_GAP_MS, gapMs);
          this.#o.latency?.record('upstream_gap_ms', gapMs);
        },
      });
      hub = h;
      if (hub.closed) return client.fail(REPLIES.streamUnavailable.status, REPLIES.streamUnavailable.text);
      this.#hubs.set(path, hub);
    }
    hub.add(client);
  }

  /** Who listens to `path` in this worker (every mount when null). */
  sessions(path: string | null): (Session & { path: string })[] {
    const out: (Session & { path: string })[] = [];
    for (const [p, hub] of this.#hubs) if (path === null || p === path) for (const s of hub.sessions()) out.push({ ...s, path: p });
    return out;
  }

  /** Writes counts to the shared stats row. */
  report(): void {
    const st = this.#o.stats;
    const snap = this.#o.reader.current();
    st.clearMounts();
    let total = 0;
    let native = 0;
    for (const [path, hub] of this.#hubs) {
      total += hub.listeners;
      native += hub.nativeListeners;
      const slot = snap.mounts.find((m) => m.path === path)?.slot;
      if (slot !== undefined) st.setMountListeners(slot, hub.listeners);
    }
    st.set(S.LISTENERS, total);
    st.set(S.NATIVE_LISTENERS, native);
    const kb = Math.floor(this.#sent / 1024);
    if (kb > 0) {
      st.add(S.KBYTES_SENT, kb);
      this.#sent -= kb * 1024;
    }
  }

  close(): void {
    clearInterval(this.#timer);
    for (const h of this.#hubs.values()) h.close('shutdown');
    this.#hubs.clear();
  }
}
