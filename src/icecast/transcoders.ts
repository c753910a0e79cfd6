/**
 * Transcoding mounts: exactly one liquidsoap per transcoding mount in the
 * whole cluster. Every node campaigns in each transcoding mount's election;
 * the node the model names as winner runs the mount's liquidsoap, supervised
 * like Icecast, and restarts it when the script changes (mount edited,
 * master moved). A deleted mount, a lost election or a stop ends it.
 *
 * A node cut off from etcd cannot see the election any more, and the
 * others start the mount's liquidsoap once its candidate key expires, one
 * TTL after etcd last heard from it. So it stops its own first: when its
 * candidacy has gone unacknowledged for half a TTL and no etcd member can
 * be reached at all (mayTranscode). Members that answer without a quorum
 * are different: no lease can expire then, nobody else will start one, and
 * the liquidsoap keeps running.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { SupervisedChild } from '../children/child-process.ts';
import { childUser } from '../children/child-user.ts';
import { readableDir, writeReadable } from '../children/private-files.ts';
import { describe } from '../core/errors.ts';
import { logger, type Logger } from '../core/log.ts';
import type { ClusterModel } from '../state/cluster-model.ts';
import { Campaigner } from '../state/election.ts';
import { transcodeElection } from '../state/keys.ts';
import { nodeIcecast } from '../core/host-port.ts';
import { renderTranscodeScript } from './liquidsoap-script.ts';

const log = logger('transcoders');

interface Running {
  child: SupervisedChild;
  script: string;
  file: string;
}

/** liquidsoap prints "2026/11/20 23:11:47 [source:3] message"; levels 1-2 are errors, 3 info. */
function liquidsoapLine(line: string, log: Logger): void {
  const m = /^\S+ \S+ \[([^\]]*):(\d)\] (.*)$/.exec(line);
  if (!m) return log.debug(line);
  const level = Number(m[2]);
  if (level <= 2) log.warn(`${m[1]}: ${m[3]}`);
  else log.debug(`${m[1]}: ${m[3]}`);
}

/**
 * Whether a node may keep running a mount's liquidsoap: its candidacy was
 * acknowledged by etcd less than half a TTL ago, or some etcd member still
 * answers (etcd without a quorum expires no lease, so no other node takes over).
 */
export function mayTranscode(unacknowledgedMs: number, ttlMs: number, etcdReachable: boolean): boolean {
  return unacknowledgedMs < ttlMs / 2 || etcdReachable;
}

export class Transcoders {
  readonly #client: Etcd3;
  readonly #model: ClusterModel;
  readonly #node: string;
  readonly #ttl: number;
  readonly #dir: string;
  readonly #binary: string;
  readonly #etcdReachable: () => boolean;
  /** Mounts whose liquidsoap this node stopped because it is cut off from etcd (said once each). */
  readonly #cutOff = new Set<string>();
  readonly #campaigns = new Map<string, Campaigner>();
  readonly #running = new Map<string, Running>();
  /** Why a mount's script was last refused, so the reason is logged once, not at every sync. */
  readonly #refused = new Map<string, string>();
  #stopped = false;
  /** liquidsoap restarts after a crash, across all mounts. */
  get restarts(): number {
    return [...this.#running.values()].reduce((n, r) => n + r.child.restarts, 0);
  }

  constructor(o: { client: Etcd3; model: ClusterModel; nodeName: string; leaseTtl: number; dataDir: string; binary?: string; etcdReachable?: () => boolean }) {
    this.#etcdReachable = o.etcdReachable ?? (() => true);
    this.#client = o.client;
    this.#model = o.model;
    this.#node = o.nodeName;
    this.#ttl = o.leaseTtl;
    this.#dir = join(o.dataDir, 'liquidsoap');
    this.#binary = o.binary ?? 'liquidsoap';
  }

  /** Paths of the transcoding mounts whose liquidsoap runs on this node. */
  get local(): string[] {
    return [...this.#running.keys()];
  }

  pid(path: string): number | null {
    return this.#running.get(path)?.child.pid ?? null;
  }

  /** Brings campaigns and processes in line with the model. */
  sync(): void {
    if (this.#stopped || !this.#model.loaded) return;
    const model = this.#model;
    const wanted = [...model.mounts.values()].filter((m) => m.transcode !== null);
    const paths = new Set(wanted.map((m) => m.path));
    for (const [path, c] of this.#campaigns) {
      if (!paths.has(path)) {
        this.#campaigns.delete(path);
        void c.stop();
      }
    }
    const masterName = model.master();
    const master = masterName !== null ? model.nodes.get(masterName) : undefined;
    const icecast = master ? nodeIcecast(master) : null;
    const keep = new Set<string>();
    for (const m of wanted) {
      if (!this.#campaigns.has(m.path)) {
        const c = new Campaigner(this.#client, transcodeElection(m.path), this.#node, this.#ttl);
        this.#campaigns.set(m.path, c);
        c.start();
      }
      if (model.leader(transcodeElection(m.path)) !== this.#node || icecast === null) continue;
      const unacknowledged = Date.now() - this.#campaigns.get(m.path)!.lastAck;
      if (!mayTranscode(unacknowledged, this.#ttl * 1000, this.#etcdReachable())) {
        if (this.#running.has(m.path) && !this.#cutOff.has(m.path)) {
          this.#cutOff.add(m.path);
          log.warn(`no etcd member reachable for ${(unacknowledged / 1000).toFixed(1)} s: stopping liquidsoap for ${m.path} before another node takes it over`);
        }
        continue;
      }
      this.#cutOff.delete(m.path);
      let script: string;
      try {
        script = renderTranscodeScript({
          transcode: m.transcode!, input: icecast, output: icecast, mount: m.path, username: m.username, password: m.password,
        });
      } catch (err) {
        // A value failed its whitelist: no liquidsoap for this mount (one that runs is stopped), said once per reason.
        const why = describe(err);
        if (this.#refused.get(m.path) !== why) {
          this.#refused.set(m.path, why);
          log.error(`not transcoding ${m.path}: ${why}`);
        }
        continue;
      }
      this.#refused.delete(m.path);
      keep.add(m.path);
      const cur = this.#running.get(m.path);
      if (cur && cur.script === script) continue;
      // The old process must be gone before the new one takes its PID and script files.
      const ended = cur ? this.#end(m.path, cur) : Promise.resolve();
      this.#start(m.path, script, ended);
    }
    for (const [path, r] of this.#running) if (!keep.has(path)) void this.#end(path, r);
    for (const path of this.#refused.keys()) if (!paths.has(path)) this.#refused.delete(path);
  }

  #start(path: string, script: string, after: Promise<void>): void {
    const base = encodeURIComponent(path.slice(1));
    const file = join(this.#dir, `${base}.liq`);
    const child = new SupervisedChild({
      name: `liquidsoap ${path}`,
      command: this.#binary,
      args: [file],
      onLine: liquidsoapLine,
      pidFile: join(this.#dir, `${base}.pid`),
      ownedIf: ` ${file} `,
      // As Icecast's user when radiod is root (IcecastManager has checked there is one).
      user: childUser(),
      cwd: this.#dir,
    });
    this.#running.set(path, { child, script, file });
    child.log.info('transcoding here');
    void after.then(() => child.reapOrphan()).then(() => {
      if (this.#running.get(path)?.child !== child) return;
      // The script holds the mount's source password: radiod's file, readable by liquidsoap's user, not writable by it.
      readableDir(this.#dir, childUser());
      writeReadable(file, script, childUser());
      child.start();
    });
  }

  async #end(path: string, r: Running): Promise<void> {
    if (this.#running.get(path) === r) this.#running.delete(path);
    r.child.log.info('transcoding stops here');
    await r.child.stop(3000);
    if (!this.#running.has(path)) rmSync(r.file, { force: true });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([
      ...[...this.#running].map(([p, r]) => this.#end(p, r)),
      ...[...this.#campaigns.values()].map((c) => c.stop()),
    ]);
    this.#campaigns.clear();
  }
}
