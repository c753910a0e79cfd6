/**
 * `radioctl listeners PATH` through etcd: radioctl can reach etcd but not
 * the nodes' workers, and a node's listeners (addresses, user agents) are
 * not something to publish every second for nobody. So radioctl puts a
 * question, `query/listeners/<id>` = {"path": ...}, on a short lease of its
 * own; every node watches for questions, asks its workers who listens
 * (supervisor.sessions) and puts its answer, `answer/listeners/<id>/<node>`,
 * on a lease of ANSWER_TTL seconds, so that nothing outlives the question
 * for long. radioctl reads the answers of the nodes alive at the time.
 */
import type { Etcd3, Watcher } from 'etcd3';
import { describe } from '../core/errors.ts';
import { logger } from '../core/log.ts';
import type { ListenerSession } from '../ipc/messages.ts';
import { PREFIX } from './keys.ts';

const log = logger('listeners');

export const QUERIES = `${PREFIX}query/listeners/`;
export const ANSWERS = `${PREFIX}answer/listeners/`;
/** Seconds an answer is kept: long enough for radioctl to read it. */
export const ANSWER_TTL = 10;
/** Listeners one node reports at most for one question. */
export const MAX_SESSIONS = 20_000;
/** Questions answered at once; more are left unanswered (radioctl then reports the node as silent). */
const MAX_OPEN = 8;

/** A node's answer as it is stored. */
export interface ListenersAnswer {
  node: string;
  /** When the node answered (Unix ms), for the seconds each listener has been connected. */
  at: number;
  sessions: ListenerSession[];
  /** Listeners left out past MAX_SESSIONS. */
  more: number;
}

/** The question's mount path, or null (every mount) for a value that is not one. */
export function questionPath(value: string): string | null {
  try {
    const v = JSON.parse(value) as { path?: unknown };
    return typeof v.path === 'string' && v.path.startsWith('/') ? v.path : null;
  } catch {
    return null;
  }
}

export class ListenerQueries {
  readonly #client: Etcd3;
  readonly #node: string;
  readonly #sessions: (path: string | null) => Promise<ListenerSession[]>;
  #watcher: Watcher | null = null;
  #open = 0;
  #stopped = false;

  constructor(client: Etcd3, node: string, sessions: (path: string | null) => Promise<ListenerSession[]>) {
    this.#client = client;
    this.#node = node;
    this.#sessions = sessions;
  }

  async start(): Promise<void> {
    const w = await this.#client.watch().prefix(QUERIES).create();
    if (this.#stopped) return void w.cancel();
    this.#watcher = w;
    w.on('put', (kv) => void this.#answer(kv.key.toString().slice(QUERIES.length), kv.value.toString()));
    w.on('error', (err) => log.debug(`watch: ${describe(err)}`));
  }

  async #answer(id: string, value: string): Promise<void> {
    if (this.#open >= MAX_OPEN || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) return;
    this.#open++;
    try {
      const all = await this.#sessions(questionPath(value));
      const answer: ListenersAnswer = { node: this.#node, at: Date.now(), sessions: all.slice(0, MAX_SESSIONS), more: Math.max(0, all.length - MAX_SESSIONS) };
      const lease = this.#client.lease(ANSWER_TTL, { autoKeepAlive: false });
      await lease.put(`${ANSWERS}${id}/${this.#node}`).value(JSON.stringify(answer));
    } catch (err) {
      log.warn(`could not answer radioctl listeners: ${describe(err)}`);
    } finally {
      this.#open--;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#watcher?.cancel().catch(() => undefined);
  }
}
