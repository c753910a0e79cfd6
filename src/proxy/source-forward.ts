/**
 * Carries a source to the master's Icecast. The master is read from the
 * snapshot at connect time; when there is none, or its Icecast does not
 * answer within a few seconds (the master is changing), the source gets a
 * clear 503 it can retry instead of a hang.
 */
import { connect, type Socket } from 'node:net';
import type { Snapshot } from '../shared/snapshot.ts';

export interface Target {
  host: string;
  port: number;
  name: string;
}

export function masterIcecast(snap: Snapshot): Target | null {
  const m = snap.nodes.find((n) => n.name === snap.master);
  if (!m || m.addresses[0] === undefined) return null;
  return { name: m.name, host: m.addresses[0], port: m.icecastInternalPort || m.icecastPort };
}

export const CONNECT_TIMEOUT_MS = 3000;

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
