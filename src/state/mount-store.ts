/**
 * Mount changes in etcd, each one atomic: create only if absent, edit only
 * if unchanged since it was read, delete only if nothing depends on it, and
 * restore all-or-nothing after checking the whole file.
 */
import type { Etcd3 } from 'etcd3';
import { RadioError } from '../core/errors.ts';
import { MOUNTS, mountKey } from './keys.ts';
import { parseMountRecord, type MountRecord } from './mount-record.ts';

/** etcd's default --max-txn-ops is 128; stay under it. */
const TXN_OPS = 100;

export async function listMounts(client: Etcd3): Promise<MountRecord[]> {
  const all = await client.getAll().prefix(MOUNTS).strings();
  return Object.values(all)
    .map((v) => parseMountRecord(JSON.parse(v)))
    .sort((a, b) => a.path.localeCompare(b.path));
}

export async function getMount(client: Etcd3, path: string): Promise<MountRecord> {
  const v = await client.get(mountKey(path)).string();
  if (v === null) throw new RadioError('RADIOAI_ERR_NO_SUCH_MOUNT', `no such mount: ${path}`);
  return parseMountRecord(JSON.parse(v));
}

/** Mounts that name `path` as their fallback or transcoding source. */
function dependents(mounts: readonly MountRecord[], path: string): string[] {
  return mounts.filter((m) => m.path !== path && (m.fallback === path || m.transcode?.source === path)).map((m) => m.path);
}

/** Refuses references (fallback, transcoding source) to mounts that do not exist. */
function checkReferences(m: MountRecord, exists: (p: string) => boolean): void {
  if (m.fallback !== null && !exists(m.fallback)) {
    throw new RadioError('RADIOAI_ERR_MOUNT_INVALID', `${m.path}: fallback ${m.fallback} is not a mount`);
  }
  if (m.transcode && !exists(m.transcode.source)) {
    throw new RadioError('RADIOAI_ERR_MOUNT_INVALID', `${m.path}: transcoding source ${m.transcode.source} is not a mount`);
  }
}

export async function createMount(client: Etcd3, record: MountRecord): Promise<void> {
  const m = parseMountRecord(record);
  const existing = new Set((await listMounts(client)).map((x) => x.path));
  checkReferences(m, (p) => existing.has(p));
  const key = mountKey(m.path);
  const res = await client.if(key, 'Create', '==', 0).then(client.put(key).value(JSON.stringify(m))).commit();
  if (!res.succeeded) throw new RadioError('RADIOAI_ERR_MOUNT_EXISTS', `mount ${m.path} already exists`);
}

export async function updateMount(client: Etcd3, path: string, change: (m: MountRecord) => MountRecord): Promise<MountRecord> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const key = mountKey(path);
    const res = await client.get(key).exec();
    const kv = res.kvs[0];
    if (!kv) throw new RadioError('RADIOAI_ERR_NO_SUCH_MOUNT', `no such mount: ${path}`);
    const next = parseMountRecord(change(parseMountRecord(JSON.parse(kv.value.toString()))));
    const existing = new Set((await listMounts(client)).map((x) => x.path));
    checkReferences(next, (p) => existing.has(p));
    const txn = await client.if(key, 'Mod', '==', kv.mod_revision).then(client.put(key).value(JSON.stringify(next))).commit();
    if (txn.succeeded) return next;
  }
  throw new RadioError('RADIOAI_ERR_MOUNT_INVALID', `mount ${path} kept changing while it was edited; try again`);
}

export async function deleteMount(client: Etcd3, path: string): Promise<void> {
  const mounts = await listMounts(client);
  if (!mounts.some((m) => m.path === path)) throw new RadioError('RADIOAI_ERR_NO_SUCH_MOUNT', `no such mount: ${path}`);
  const deps = dependents(mounts, path);
  if (deps.length > 0) {
    throw new RadioError('RADIOAI_ERR_MOUNT_INVALID', `mount ${path} is the fallback or source of ${deps.join(', ')}; change those first`);
  }
  const res = await client.delete().key(mountKey(path)).exec();
  if (res.deleted === '0') throw new RadioError('RADIOAI_ERR_NO_SUCH_MOUNT', `no such mount: ${path}`);
}

export interface Backup {
  format: 'radioai-mounts';
  version: 1;
  createdAt: string;
  mounts: MountRecord[];
}

export async function backup(client: Etcd3): Promise<Backup> {
  return { format: 'radioai-mounts', version: 1, createdAt: new Date().toISOString(), mounts: await listMounts(client) };
}

/** Checks a whole backup file; throws RADIOAI_ERR_BACKUP_INVALID naming the first problem. */
export function parseBackup(text: string, existing: ReadonlySet<string>): MountRecord[] {
  const bad = (msg: string): never => {
    throw new RadioError('RADIOAI_ERR_BACKUP_INVALID', `invalid backup: ${msg}`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return bad(`not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return bad('expected a JSON object');
  const d = doc as Record<string, unknown>;
  if (d.format !== 'radioai-mounts' || d.version !== 1) bad('not a radioai mount backup (format "radioai-mounts", version 1)');
  if (!Array.isArray(d.mounts)) return bad('"mounts" must be an array');
  const mounts: MountRecord[] = [];
  const seen = new Set<string>();
  d.mounts.forEach((raw, i) => {
    let m: MountRecord;
    try {
      m = parseMountRecord(raw);
    } catch (err) {
      return bad(`mounts[${i}]: ${(err as Error).message}`);
    }
    if (seen.has(m.path)) bad(`mounts[${i}]: ${m.path} appears twice`);
    seen.add(m.path);
    mounts.push(m);
  });
  for (const m of mounts) {
    try {
      checkReferences(m, (p) => seen.has(p) || existing.has(p));
    } catch (err) {
      bad((err as Error).message);
    }
  }
  return mounts;
}

export async function restore(client: Etcd3, text: string): Promise<number> {
  const existing = new Set((await listMounts(client)).map((m) => m.path));
  const mounts = parseBackup(text, existing);
  for (let i = 0; i < mounts.length; i += TXN_OPS) {
    const chunk = mounts.slice(i, i + TXN_OPS);
    const txn = client.if(mountKey(chunk[0]!.path), 'Version', '>', -1);
    await txn.then(...chunk.map((m) => client.put(mountKey(m.path)).value(JSON.stringify(m)))).commit();
  }
  return mounts.length;
}
