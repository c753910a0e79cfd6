/**
 * Breaks the calling worker thread on purpose, in each way a request's
 * handling could break it, so that tests can watch the supervisor replace
 * it while the node keeps serving. Reached only when radiod runs with
 * RADIOAI_FAULTS=1 (the test suite), by the CRASH message or by a request
 * for /debug/fault/KIND from loopback.
 */
import type { FaultKind } from '../ipc/messages.ts';

/** Kept reachable so that the collector cannot free what 'oom' allocates. */
const hoard: unknown[] = [];

/** `deaf` needs the worker's listen sockets, which only worker-main.ts holds. */
export function injectFault(kind: FaultKind, closeListeners: () => void): void {
  switch (kind) {
    case 'deaf':
      closeListeners();
      return;
    case 'throw':
      throw new Error('fault injected: exception in a request handler');
    case 'timer':
      setImmediate(() => {
        throw new Error('fault injected: exception in a timer');
      });
      return;
    case 'reject':
      void Promise.reject(new Error('fault injected: promise rejected with no handler'));
      return;
    case 'wedge': {
      // Spins until the supervisor's watchdog terminates the thread.
      const until = Number.POSITIVE_INFINITY;
      while (Date.now() < until) hoard.length = 0;
      return;
    }
    case 'oom':
      // Small live objects until the worker's heap limit ends the thread.
      for (;;) hoard.push(new Array(1024).fill({ k: hoard.length }));
  }
}
