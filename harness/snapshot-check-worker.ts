/**
 * Worker for the shared-memory test: reads the snapshot as fast as it can
 * until told to stop and checks that every snapshot it sees is whole (all
 * entries come from the same publish). Reports counts to the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SnapshotReader } from '../src/ipc/snapshot-reader.ts';

const { sab, stop } = workerData as { sab: SharedArrayBuffer; stop: SharedArrayBuffer };
const reader = new SnapshotReader(sab);
const stopFlag = new Int32Array(stop);
let reads = 0;
let distinct = 0;
let torn = 0;
let lastSeq = -1;
const problems: string[] = [];

function check(s: ReturnType<SnapshotReader['current']>): string | null {
  const i = s.nodes[0]?.listeners ?? -1;
  if (s.nodes.length !== 1 + (i % 7)) return `publish ${i}: ${s.nodes.length} nodes`;
  for (const n of s.nodes) {
    if (n.listeners !== i) return `node ${n.name} listeners ${n.listeners} != ${i}`;
    if (!n.name.startsWith(`n${i}-`)) return `node name ${n.name} not of publish ${i}`;
    const j = Number(n.name.split('-')[1]);
    if (n.addresses.join(',') !== `10.${i % 250}.${j}.1,::${j}`) return `node ${n.name} addresses ${n.addresses.join(',')}`;
    if (n.httpPort !== 1000 + j) return `node ${n.name} port ${n.httpPort}`;
  }
  if (s.mounts.length !== i % 11) return `publish ${i}: ${s.mounts.length} mounts`;
  for (const m of s.mounts) {
    if (m.listeners !== i || !m.path.startsWith(`/m${i}/`)) return `mount ${m.path} (${m.listeners}) not of publish ${i}`;
    if (m.readyOn.some((r) => !r.startsWith(`n${i}-`))) return `mount ${m.path} ready on ${m.readyOn.join(',')}`;
  }
  if (s.master !== null && !s.master.startsWith(`n${i}-`)) return `master ${s.master} not of publish ${i}`;
  return null;
}

while (Atomics.load(stopFlag, 0) === 0) {
  const s = reader.current();
  reads++;
  if (s.seq === lastSeq || s.seq === 0) continue;
  if (s.seq < lastSeq) problems.push(`sequence went back from ${lastSeq} to ${s.seq}`);
  lastSeq = s.seq;
  distinct++;
  const p = check(s);
  if (p) {
    torn++;
    if (problems.length < 5) problems.push(p);
  }
}
parentPort!.postMessage({ reads, distinct, torn, problems, retries: reader.retries });
