/**
 * Which node serves a listener: a small function of the snapshot and the
 * request, so it can be tested on its own. Every node that is alive
 * qualifies once the mount is live somewhere (a node's hubs pull a mount
 * from whichever node has it); each is scored by its remaining capacity
 * (listeners against MAX_LISTENERS, measured bandwidth against
 * BANDWIDTH_LIMIT); this node is preferred while it has room, otherwise the
 * choice is weighted-random among the best, so load spreads without herding.
 */
import type { Snapshot, SnapshotMount, SnapshotNode } from '../ipc/snapshot.ts';

/** Remaining capacity in (0, 1]; 0 when full. A node without limits is always 1. */
export function headroom(n: SnapshotNode): number {
  let free = 1;
  if (n.maxListeners > 0) free = Math.min(free, 1 - n.listeners / n.maxListeners);
  if (n.bandwidthLimitKbps > 0) free = Math.min(free, 1 - n.bandwidthKbps / n.bandwidthLimitKbps);
  return Math.max(0, free);
}

/** The mount a listener of `mount` is served from: itself, or its fallback while it has no source. */
export function servable(snap: Snapshot, mount: SnapshotMount): SnapshotMount | null {
  if (mount.readyOn.length > 0) return mount;
  if (mount.fallbackPath !== null) {
    const fb = snap.mounts.find((m) => m.path === mount.fallbackPath);
    if (fb && fb.readyOn.length > 0) return fb;
  }
  return null;
}

export interface Choice {
  node: SnapshotNode;
  self: boolean;
}

/**
 * Chooses the node for a listener of `mount`. `selfLoad` is this node's own
 * up-to-date count (the snapshot's lags by up to a second); `random` is
 * injectable for tests; `eligible` narrows the other nodes (those that
 * speak HTTPS, for a listener that came by HTTPS). Returns null when no node
 * can serve.
 */
export function chooseNode(snap: Snapshot, mount: SnapshotMount, selfName: string, random: () => number = Math.random, eligible?: (n: SnapshotNode) => boolean): Choice | null {
  if (!servable(snap, mount)) return null;
  let candidates = snap.nodes.filter((n) => n.alive && (eligible === undefined || n.name === selfName || eligible(n)));
  // Out of service this node sends listeners elsewhere, but when it knows of
  // nobody else who can take them it serves them rather than refuse them.
  if (candidates.length === 0 && snap.outOfService) candidates = snap.nodes.filter((n) => n.name === selfName);
  const self = candidates.find((n) => n.name === selfName);
  if (self && headroom(self) > 0) return { node: self, self: true };
  const scored = candidates.map((n) => ({ n, s: headroom(n) })).filter((x) => x.s > 0);
  if (scored.length === 0) return null;
  const best = Math.max(...scored.map((x) => x.s));
  const top = scored.filter((x) => x.s >= best / 2);
  let r = random() * top.reduce((a, x) => a + x.s, 0);
  for (const x of top) {
    r -= x.s;
    if (r <= 0) return { node: x.n, self: x.n.name === selfName };
  }
  const last = top[top.length - 1]!.n;
  return { node: last, self: last.name === selfName };
}
