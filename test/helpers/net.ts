/**
 * Test helpers for ports and waiting: free ports found by binding port 0,
 * and polling a real signal instead of sleeping a fixed time.
 */
import { createServer } from 'node:net';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A port P with P+1 free too (etcd's client and peer ports). */
export async function freePortPair(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const p = await freePort(host);
    if (p < 65535 && (await isFree(p + 1, host))) return p;
  }
}

/** Polls `probe` until it returns a truthy value or `timeoutMs` passes; returns the value. */
export async function waitFor<T>(probe: () => Promise<T> | T, timeoutMs: number, what: string, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** True when the process exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
