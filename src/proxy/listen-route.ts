/**
 * What to do with a listener's request, for both doors: serve it here from
 * a hub, send it to another node (302), or refuse it (404 unknown mount,
 * 503 nobody can serve it). A pure function of the snapshot and the request.
 */
import { hostPort } from '../shared/host-port.ts';
import { isMountPath } from '../shared/mount-path.ts';
import type { Snapshot } from '../shared/snapshot.ts';
import { chooseNode, servable } from './balance.ts';

export type ListenDecision =
  | { kind: 'serve' }
  | { kind: 'redirect'; location: string }
  | { kind: 'error'; status: number; text: string };

export interface ListenContext {
  nodeName: string;
  /** ICECAST_PROXY: stream from this node rather than redirect. */
  proxy: boolean;
  /** The Icecast-compatible door serves whatever it is asked; only HTTP_PORT redirects. */
  door: boolean;
  random?: () => number;
}

export function routeListener(snap: Snapshot, path: string, ctx: ListenContext): ListenDecision {
  const mount = isMountPath(path) ? snap.mounts.find((m) => m.path === path) : undefined;
  if (!mount) return { kind: 'error', status: 404, text: 'no such mount\n' };
  if (!servable(snap, mount)) return { kind: 'error', status: 503, text: 'this mount has no source right now; try again later\n' };
  if (ctx.door) return { kind: 'serve' };
  const choice = chooseNode(snap, mount, ctx.nodeName, ctx.random);
  if (!choice) return { kind: 'error', status: 503, text: 'no node can take another listener right now; try again later\n' };
  if (ctx.proxy && choice.self) return { kind: 'serve' };
  const addr = choice.node.addresses[0];
  if (addr === undefined) return { kind: 'error', status: 503, text: 'no node can take another listener right now\n' };
  // The target is the chosen node's Icecast-compatible door, which serves and never redirects: no loops.
  return { kind: 'redirect', location: `http://${hostPort(addr, choice.node.icecastPort)}${path}` };
}

/** Guesses a content type from the mount's extension (for HEAD, which opens no stream). */
export function guessType(path: string): string {
  if (/\.(ogg|oga|opus)$/i.test(path)) return 'application/ogg';
  if (/\.mp3$/i.test(path)) return 'audio/mpeg';
  if (/\.(aac|aacp)$/i.test(path)) return 'audio/aac';
  if (/\.webm$/i.test(path)) return 'video/webm';
  return 'application/octet-stream';
}

/**
 * routeListener with its answers remembered until the snapshot changes:
 * most requests name a handful of mounts and, while this node has room,
 * get the same answer. Choices made at random (this node full) are not
 * remembered, so the load still spreads.
 */
export class ListenRouter {
  readonly #ctx: ListenContext;
  #seq = -1;
  readonly #memo = new Map<string, ListenDecision>();

  constructor(ctx: ListenContext) {
    this.#ctx = ctx;
  }

  route(snap: Snapshot, path: string): ListenDecision {
    if (snap.seq !== this.#seq) {
      this.#seq = snap.seq;
      this.#memo.clear();
    }
    const hit = this.#memo.get(path);
    if (hit) return hit;
    const d = routeListener(snap, path, this.#ctx);
    const stable = d.kind !== 'redirect' || this.#isSelf(snap, d.location);
    // Unknown paths are not remembered: a scan of random URLs must not grow the map.
    if (stable && !(d.kind === 'error' && d.status === 404)) this.#memo.set(path, d);
    return d;
  }

  #isSelf(snap: Snapshot, location: string): boolean {
    const self = snap.nodes.find((n) => n.name === this.#ctx.nodeName);
    return self !== undefined && self.addresses[0] !== undefined && location.startsWith(`http://${hostPort(self.addresses[0], self.icecastPort)}/`);
  }
}
