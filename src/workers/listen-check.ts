/**
 * Does this node still answer on its public port? The main thread asks its
 * own HTTP port for /health every few seconds, as a client would, through
 * whichever worker the kernel picks. A node whose workers are all gone, or
 * whose listen sockets are closed while the process and its etcd lease live
 * on, must not stay in DNS: the daemon publishes `serving: false` in its
 * status, and every node's DNS and balancer leave it out until it answers
 * again.
 */
import { request } from 'node:http';

export const LISTEN_CHECK = {
  intervalMs: 2000,
  timeoutMs: 2000,
  /** Failed probes in a row before the node counts as not serving (one lost probe is not an outage). */
  failuresToFail: 2,
} as const;

/** The verdict, as a pure function of what was observed. */
export function listening(readyWorkers: number, failuresInRow: number): boolean {
  return readyWorkers > 0 && failuresInRow < LISTEN_CHECK.failuresToFail;
}

/** One GET /health: true for any HTTP answer (a 503 while starting still proves the port serves). */
export function probeHealth(host: string, port: number, timeoutMs = LISTEN_CHECK.timeoutMs): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/health', method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode !== undefined);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

export class ListenCheck {
  readonly #host: string;
  readonly #port: number;
  #failures = 0;
  #inFlight = false;
  #lastAt = 0;

  constructor(host: string, port: number) {
    // A wildcard bind is probed on loopback.
    this.#host = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
    this.#port = port;
  }

  get failures(): number {
    return this.#failures;
  }

  /** Called on every tick; probes at most every intervalMs. */
  tick(now = Date.now()): void {
    if (this.#inFlight || now - this.#lastAt < LISTEN_CHECK.intervalMs) return;
    this.#lastAt = now;
    this.#inFlight = true;
    void probeHealth(this.#host, this.#port).then((ok) => {
      this.#inFlight = false;
      this.#failures = ok ? 0 : this.#failures + 1;
    });
  }
}
