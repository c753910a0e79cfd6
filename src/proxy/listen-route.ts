/**
 * What to do with a listener's request, on either public port: serve it
 * here from a hub, send it to another node (302), or refuse it (404 unknown
 * mount, 503 nobody can serve it). A pure function of the snapshot and the
 * request.
 *
 * In proxy mode a node serves its own listeners whenever it has room: its
 * hub pulls the mount from whichever node has it live, so a mount that has
 * just gone live on the master (and is not yet relayed here) is served at
 * once, not redirected. A full node redirects to another node's same port,
 * so a client that can reach only port 80 stays on port 80. In redirect
 * mode HTTP_PORT sends every listener to the chosen node's ICECAST_PORT,
 * which serves it.
 *
 * HTTPS_PORT always streams, in either mode, and a full node sends a
 * listener only to another node that speaks HTTPS, by its name
 * (`https://NODE.DOMAIN`): the certificate names the domain's hosts, not
 * their addresses, and a page served over HTTPS may not play from http://.
 */
import { hostPort } from '../core/host-port.ts';
import { isMountPath } from '../core/mount-path.ts';
import type { Snapshot } from '../ipc/snapshot.ts';
import { chooseNode, headroom, servable } from './balance.ts';
import { origin } from './playlist.ts';
import { REPLIES, type ReplyKey } from './answers.ts';

/** A refusal from the answers table, as a decision. */
const refuse = (k: ReplyKey): ListenDecision => ({ kind: 'error', status: REPLIES[k].status, text: REPLIES[k].text });

export type ListenDecision =
  | { kind: 'serve' }
  | { kind: 'redirect'; location: string }
  | { kind: 'error'; status: number; text: string };

export interface ListenContext {
  nodeName: string;
  /** ICECAST_PROXY: stream from this node rather than redirect. */
  proxy: boolean;
  /** The public port the request came in on. */
  port: 'http' | 'icecast' | 'https';
  /** DOMAIN, which names the nodes an HTTPS listener is sent to. */
  domain?: string;
  random?: () => number;
}

export function routeListener(snap: Snapshot, path: string, ctx: ListenContext): ListenDecision {
  const mount = isMountPath(path) ? snap.mounts.find((m) => m.path === path) : undefined;
  if (!mount) return refuse('noSuchMount');
  const streams = ctx.proxy || ctx.port !== 'http';
  const self = snap.nodes.find((n) => n.name === ctx.nodeName);
  // Between its start and its registration a node is not in its own snapshot yet, so it has
  // no load figures of its own: it serves (it has no listeners yet) rather than redirect.
  if (streams && !self && !snap.outOfService) return { kind: 'serve' };
  if (!servable(snap, mount)) {
    // The snapshot learns that a source went live a second or two after it did: a node
    // with room lets its hub look for the stream (it waits briefly, then answers 503).
    if (streams && self && self.alive && headroom(self) > 0) return { kind: 'serve' };
    return refuse('noSource');
  }
  const https = ctx.port === 'https';
  const choice = chooseNode(snap, mount, ctx.nodeName, ctx.random, https ? (n) => n.httpsPort > 0 : undefined);
  if (!choice) return refuse('nodesFull');
  if (streams && choice.self) return { kind: 'serve' };
  if (https) return { kind: 'redirect', location: `${origin('https', `${choice.node.name}.${ctx.domain ?? ''}`, choice.node.httpsPort)}${path}` };
  const addr = choice.node.addresses[0];
  if (addr === undefined) return refuse('nodesFull');
  const port = ctx.port === 'http' && ctx.proxy ? choice.node.httpPort : choice.node.icecastPort;
  return { kind: 'redirect', location: `http://${hostPort(addr, port)}${path}` };
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

  /** Whether `d`, just returned by route() for `path`, is remembered until the snapshot changes. */
  remembers(path: string, d: ListenDecision): boolean {
    return this.#memo.get(path) === d;
  }

  #isSelf(snap: Snapshot, location: string): boolean {
    const self = snap.nodes.find((n) => n.name === this.#ctx.nodeName);
    return self !== undefined && self.addresses[0] !== undefined && location.startsWith(`http://${hostPort(self.addresses[0], self.icecastPort)}/`);
  }

  /** Whether a GET or HEAD of `path` would open a stream here: the front door gives those to the Icecast-compatible door. */
  streams(snap: Snapshot, path: string): boolean {
    return this.route(snap, path).kind === 'serve';
  }
}
