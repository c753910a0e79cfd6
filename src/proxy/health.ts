/**
 * GET /health: 200 with a JSON body while the node can serve (its state was
 * read from etcd at least once and it is not shutting down), 503 otherwise.
 * When etcd is unreachable the node still serves from its last known state,
 * and the body says so; when it is cut off from every etcd member while
 * other nodes exist, it is out of service (503) until the link returns.
 */
import type { Snapshot } from '../ipc/snapshot.ts';

export interface Health {
  status: number;
  body: string;
}

export function health(snap: Snapshot, nodeName: string, worker: number): Health {
  const ok = snap.stateLoaded && !snap.draining && !snap.outOfService;
  const self = snap.nodes.find((n) => n.name === nodeName);
  const body = {
    status: ok ? 'ok' : snap.draining ? 'draining' : snap.outOfService ? 'out-of-service' : 'starting',
    node: nodeName,
    master: snap.master,
    role: snap.master === nodeName ? 'master' : 'relay',
    etcd: snap.etcdConnected ? 'connected' : 'unreachable',
    etcdSeenAt: snap.etcdSeenAt > 0 ? new Date(snap.etcdSeenAt * 1000).toISOString() : null,
    icecast: self?.icecastReady ? 'ready' : 'down',
    nodes: snap.nodes.filter((n) => n.alive).length,
    mounts: snap.mounts.length,
    worker,
  };
  return { status: ok ? 200 : 503, body: JSON.stringify(body) };
}
