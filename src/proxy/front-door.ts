/**
 * The front door of both public ports (HTTP_PORT and ICECAST_PORT), in
 * every worker (SO_REUSEPORT spreads connections over them). node:net
 * accepts each connection without reading from it; the conn-peek addon
 * looks at its request line without consuming it (MSG_PEEK) and
 * classify.ts decides who serves it:
 *
 *   accept (node:net, paused) --peek--> classify
 *        |- 'uws':  the descriptor goes to uWebSockets.js (adoptSocket),
 *        |          which reads the untouched request as if it had accepted
 *        |          the connection itself; node:net's handle is closed
 *        '- 'door': node:net's socket goes on to the Icecast-compatible
 *                   door, which reads the request itself
 *
 * Exactly one side owns the connection afterwards: the addon works on a
 * duplicate descriptor, and closing one of two descriptors sends nothing to
 * the peer. Without the addon every connection goes to the door, which
 * answers every request too, only at a lower rate for short ones.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { TemplatedApp } from 'uWebSockets.js';
import type { SnapshotReader } from '../shared/snapshot-reader.ts';
import { classify } from './classify.ts';
import { EAGAIN, loadConnPeek, type ConnPeek } from './conn-peek.ts';
import { DOOR_LIMITS, type DoorPort, type IcecastDoor } from './icecast-door.ts';

/** uWS's App has adoptSocket(fd), which its type declarations leave out. */
export type AdoptingApp = TemplatedApp & { adoptSocket(fd: number): void };

export interface FrontDoorOptions {
  reader: SnapshotReader;
  door: IcecastDoor;
}

/** How long to wait before looking again at a request line that has not all arrived. */
const REPEEK_MS = 20;

export class FrontDoor {
  readonly #o: FrontDoorOptions;
  readonly #servers: Server[] = [];
  readonly #peek: ConnPeek | null = loadConnPeek();
  /** One buffer for every peek: the worker runs one callback at a time. */
  readonly #buf = new Uint8Array(4096);

  constructor(o: FrontDoorOptions) {
    this.#o = o;
  }

  listen(addrs: string[], port: number, door: DoorPort, app: AdoptingApp): Promise<void> {
    return Promise.all(addrs.map((host) => new Promise<void>((resolve, reject) => {
      const server = createServer({ noDelay: true, pauseOnConnect: true }, (sock) => this.#accept(sock, door, app));
      server.once('error', reject);
      server.listen({ host, port, reusePort: true, backlog: 4096 }, () => {
        server.off('error', reject);
        server.on('error', () => undefined);
        this.#servers.push(server);
        resolve();
      });
    }))).then(() => undefined);
  }

  /** Stops accepting; connections already handed on are their owners' to close. */
  close(): void {
    for (const s of this.#servers.splice(0)) s.close();
  }

  #accept(sock: Socket, door: DoorPort, app: AdoptingApp): void {
    sock.on('error', () => undefined);
    const peek = this.#peek;
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (!peek || fd === undefined || fd < 0) return this.#o.door.accept(sock, door);
    let watch: object;
    const look = (): void => {
      const n = peek.peek(watch, this.#buf);
      if (n === EAGAIN) return peek.poll(watch);
      if (n <= 0) return finish(() => sock.destroy());
      const c = classify(this.#buf.subarray(0, n), (path) => door.router.streams(this.#o.reader.current(), path));
      if (c === 'more') {
        if (n >= this.#buf.length) return finish(() => this.#o.door.accept(sock, door));
        retry ??= setTimeout(() => {
          retry = null;
          look();
        }, REPEEK_MS);
        return;
      }
      if (c === 'uws') {
        cleanup();
        const own = peek.release(watch);
        sock.destroy();
        app.adoptSocket(own);
        return;
      }
      finish(() => this.#o.door.accept(sock, door));
    };
    try {
      watch = peek.watch(fd, look);
    } catch {
      return this.#o.door.accept(sock, door);
    }
    let retry: NodeJS.Timeout | null = null;
    let done = false;
    // The same deadline as the door's for a whole head: a client that sends nothing is let go.
    const deadline = setTimeout(() => finish(() => sock.destroy()), DOOR_LIMITS.headerTimeoutMs);
    const cleanup = (): void => {
      done = true;
      clearTimeout(deadline);
      if (retry) clearTimeout(retry);
    };
    const finish = (then: () => void): void => {
      if (done) return;
      cleanup();
      peek.close(watch);
      then();
    };
    sock.once('close', () => finish(() => undefined));
  }
}
