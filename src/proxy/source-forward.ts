/**
 * Finds the master's Icecast for a source. The master is read from the
 * snapshot at connect time; when its Icecast cannot be reached (the master
 * has just died and the others are electing the next), the source is held
 * and the snapshot asked again every quarter of a second, so that a source
 * program reconnecting during a failover is taken the moment a new master
 * is known, rather than refused and left to its own reconnect delay
 * (seconds, in most programs). Past HOLD_MS it gets a clear 503.
 */
import { connect, type Socket } from 'node:net';
import { nodeIcecast } from '../core/host-port.ts';
import type { Snapshot } from '../ipc/snapshot.ts';

export interface Target {
  host: string;
  port: number;
  name: string;
}


export function masterIcecast(snap: Snapshot): Target | null {
  const m = snap.nodes.find((n) => n.name === snap.master);
  return m ? nodeIcecast(m) : null;
}

export const CONNECT_TIMEOUT_MS = 3000;
/** How long a new source is held while no master's Icecast can be reached: an election takes about LEASE_TTL. */
export const HOLD_MS = 8000;
const HOLD_RETRY_MS = 250;

/**
 * Connects to `first`, or else to whatever `find` names next, until one
 * answers or `holdMs` has passed; rejects with the last error.
 */
export async function connectSoon(first: Target, find: () => Target | null, holdMs = HOLD_MS): Promise<{ sock: Socket; target: Target }> {
  const deadline = Date.now() + holdMs;
  let t: Target | null = first;
  for (;;) {
    let last: unknown = new Error('no master right now');
    if (t !== null) {
      try {
        return { sock: await connectTo(t), target: t };
      } catch (err) {
        last = err;
      }
    }
    if (Date.now() + HOLD_RETRY_MS > deadline) throw last;
    await new Promise((r) => setTimeout(r, HOLD_RETRY_MS));
    t = find();
  }
}

/** Opens a connection to `t`; rejects on error or after CONNECT_TIMEOUT_MS. */
export function connectTo(t: Target): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: t.host, port: t.port });
    sock.setNoDelay(true);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`master ${t.name} (${t.host}:${t.port}) did not answer`));
    }, CONNECT_TIMEOUT_MS);
    sock.once('connect', () => {
      clearTimeout(timer);
      resolve(sock);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
