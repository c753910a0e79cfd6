/**
 * Does this node still answer on its public port? The main thread asks its
 * own HTTP port for /health every few seconds, as a client would, through
 * whichever worker the kernel picks. A node whose workers are all gone, or
 * whose listen sockets are closed while the process and its etcd lease live
 * on, must not stay in DNS: the daemon publishes `serving: false` in its
 * status, and every node's DNS and balancer leave it out until it answers
 * again. When the port refuses connections outright, the workers are
 * replaced.
 */
import { request } from 'node:http';

export const LISTEN_CHECK = {
  intervalMs: 2000,
  timeoutMs: 2000,
  /** Failed probes in a row before the node counts as not serving (one lost probe is not an outage). */
  failuresToFail: 2,
  /** Workers are replaced for a refusing port at most this often. */
  replaceEveryMs: 30_000,
} as const;

/** The verdict, as a pure function of what was observed. */
export function listening(readyWorkers: number, failuresInRow: number): boolean {
  return readyWorkers > 0 && failuresInRow < LISTEN_CHECK.failuresToFail;
}

/**
 * Should every worker be replaced? Only when the port refuses connections
 * (no worker holds a listen socket, however alive the threads look), and
 * not more often than `everyMs`: replacing workers drops their listeners,
 * so an ambiguous failure (a timeout) is left to the heartbeat watchdog.
 */
export function replaceWorkers(refusalsInRow: number, msSinceLast: number, everyMs = LISTEN_CHECK.replaceEveryMs): boolean {
  return refusalsInRow >= LISTEN_CHECK.failuresToFail && msSinceLast >= everyMs;
}

export type Probe = 'ok' | 'refused' | 'failed';

/**
 * One GET /health: 'ok' for any HTTP answer (a 503 while starting still
 * proves the port serves), 'refused' when nothing listens on the port at
 * all, 'failed' for anything else (a timeout, a reset).
 */
export function probeHealth(host: string, port: number, timeoutMs = LISTEN_CHECK.timeoutMs): Promise<Probe> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/health', method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve('ok');
    });
    req.on('timeout', () => req.destroy());
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : 'failed'));
    req.end();
  });
}

export class ListenCheck {
  readonly #host: string;
  readonly #port: number;
  #failures = 0;
  #refusals = 0;
  #inFlight = false;
  #lastAt = 0;

  constructor(host: string, port: number) {
    // A wildcard bind is probed on loopback.
    this.#host = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
    this.#port = port;
  }

  /** Probes in a row that failed in any way. */
  get failures(): number {
    return this.#failures;
  }

  /** Probes in a row that found no listen socket at all. */
  get refusals(): number {
    return this.#refusals;
  }

  /** Called on every tick; probes at most every intervalMs. */
  tick(now = Date.now()): void {
    if (this.#inFlight || now - this.#lastAt < LISTEN_CHECK.intervalMs) return;
    this.#lastAt = now;
    this.#inFlight = true;
    void probeHealth(this.#host, this.#port).then((p) => {
      this.#inFlight = false;
      this.#failures = p === 'ok' ? 0 : this.#failures + 1;
      this.#refusals = p === 'refused' ? this.#refusals + 1 : 0;
    });
  }
}
