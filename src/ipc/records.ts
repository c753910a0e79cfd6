/**
 * The node and mount records of the shared snapshot, each declared once as
 * a table of fields. The word layout is compiled from the table (three
 * fixed words, then each field in order), and the writer and the reader
 * loop over the same table, so a new field is one line here and one in the
 * record's type; a type check below fails the build when a field of the
 * type is missing from its table.
 *
 * Kinds: `int` one word; `flag` one bit of the record's FLAGS word; `text`
 * two words (offset and length in the string area); `list` text joined by
 * commas; `info` the mount's StreamInfo as JSON text; `hash` a credential
 * hash in eight words, all zero when unknown. References between records
 * (a mount's fallback, the nodes a mount is ready on) are slots, resolved
 * by the writer and the reader themselves.
 */
import { CREDENTIAL_BYTES } from './credential.ts';
import { NO_STREAM_INFO, streamInfoOf, type SnapshotMount, type SnapshotNode } from './snapshot.ts';

export type FieldKind = 'int' | 'flag' | 'text' | 'list' | 'info' | 'hash';

interface Field<K extends string> {
  key: K;
  kind: FieldKind;
}

export const NODE_FIELDS = [
  { key: 'name', kind: 'text' },
  { key: 'addresses', kind: 'list' },
  { key: 'httpPort', kind: 'int' },
  { key: 'dnsPort', kind: 'int' },
  { key: 'icecastPort', kind: 'int' },
  { key: 'icecastInternalPort', kind: 'int' },
  { key: 'httpsPort', kind: 'int' },
  { key: 'listeners', kind: 'int' },
  { key: 'bandwidthKbps', kind: 'int' },
  { key: 'maxListeners', kind: 'int' },
  { key: 'bandwidthLimitKbps', kind: 'int' },
  { key: 'alive', kind: 'flag' },
  { key: 'master', kind: 'flag' },
  { key: 'icecastReady', kind: 'flag' },
  { key: 'etcdHealthy', kind: 'flag' },
  { key: 'proxy', kind: 'flag' },
] as const satisfies readonly Field<keyof SnapshotNode>[];

export const MOUNT_FIELDS = [
  { key: 'path', kind: 'text' },
  { key: 'relay', kind: 'flag' },
  { key: 'transcoded', kind: 'flag' },
  { key: 'sourceConnected', kind: 'flag' },
  { key: 'listeners', kind: 'int' },
  { key: 'kickedAt', kind: 'int' },
  { key: 'info', kind: 'info' },
  { key: 'credential', kind: 'hash' },
] as const satisfies readonly Field<keyof SnapshotMount>[];

/** Fields kept outside the tables: the slot is the record's place, the rest refer to other records. */
type NodeOutside = 'slot';
type MountOutside = 'slot' | 'fallbackPath' | 'readyOn';
// Compile-time completeness: `true` only when every field of the type is in its table.
const nodeComplete: Exclude<keyof SnapshotNode, NodeOutside | (typeof NODE_FIELDS)[number]['key']> extends never ? true : never = true;
const mountComplete: Exclude<keyof SnapshotMount, MountOutside | (typeof MOUNT_FIELDS)[number]['key']> extends never ? true : never = true;
void nodeComplete;
void mountComplete;

/** Words every record starts with. */
export const USED = 0;
export const GENERATION = 1;
export const FLAGS = 2;
const FIXED_WORDS = 3;

const WIDTH: Record<FieldKind, number> = { int: 1, flag: 0, text: 2, list: 2, info: 2, hash: CREDENTIAL_BYTES / 4 };

/** A record's layout: where each field lives. */
export interface RecordLayout {
  fields: readonly Field<string>[];
  /** Word of each field (flags: its bit number), in table order. */
  at: number[];
  /** Words of extra int slots the writer and reader handle themselves (a mount's fallback slot). */
  extra: Record<string, number>;
  words: number;
}

export function compile(fields: readonly Field<string>[], extra: readonly string[] = []): RecordLayout {
  let word = FIXED_WORDS;
  let bit = 0;
  const at = fields.map((f) => {
    if (f.kind === 'flag') {
      if (bit === 31) throw new Error('more than 31 flags in one record');
      return bit++;
    }
    const w = word;
    word += WIDTH[f.kind];
    return w;
  });
  const slots: Record<string, number> = {};
  for (const name of extra) slots[name] = word++;
  return { fields, at, extra: slots, words: word };
}

export const NODE_RECORD = compile(NODE_FIELDS);
export const MOUNT_RECORD = compile(MOUNT_FIELDS, ['fallbackSlot']);

/** The text a field puts in the string area, '' for fields without text. */
function textOf(kind: FieldKind, v: unknown): string {
  if (kind === 'text') return v as string;
  if (kind === 'list') return (v as string[]).join(',');
  if (kind === 'info') return JSON.stringify(v);
  return '';
}

/** The texts of a record's value, in table order: sized before the lock is taken, written under it. */
export function textsOf(r: RecordLayout, value: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const f of r.fields) if (WIDTH[f.kind] === 2) out.push(textOf(f.kind, value[f.key]));
  return out;
}

/** Where a record is written: its words, the word area as bytes, and the string area's writer. */
export interface RecordTarget {
  words: Int32Array;
  raw: Buffer;
  /** Puts a string into the string area; returns its offset and length. */
  put: (s: string) => [number, number];
}

/**
 * Writes a record's fields at word `base` (USED and GENERATION are the
 * writer's), and leaves in `value` what a reader will read back: an int as
 * its 32-bit word, a hash as its bytes ('' when unknown).
 */
export function writeRecord(r: RecordLayout, t: RecordTarget, base: number, value: Record<string, unknown>, texts: readonly string[]): void {
  const w = t.words;
  let flags = 0;
  let k = 0;
  for (let i = 0; i < r.fields.length; i++) {
    const f = r.fields[i]!;
    const at = base + r.at[i]!;
    const v = value[f.key];
    switch (f.kind) {
      case 'int':
        w[at] = v as number;
        value[f.key] = w[at];
        break;
      case 'flag': if (v) flags |= 1 << r.at[i]!; break;
      case 'hash': {
        // Zeros (unknown) unless a whole hash is given.
        const bytes = Buffer.from(v as string, 'hex');
        const whole = bytes.length === CREDENTIAL_BYTES;
        if (whole) bytes.copy(t.raw, at * 4);
        value[f.key] = whole && bytes.some((x) => x !== 0) ? bytes.toString('hex') : '';
        break;
      }
      default: {
        const [off, len] = t.put(texts[k++]!);
        w[at] = off;
        w[at + 1] = len;
      }
    }
  }
  w[base + FLAGS] = flags;
}

/** Where a record is read from. */
export interface RecordSource {
  words: Int32Array;
  raw: Buffer;
  /** A string of the string area; throws when out of range (a torn copy). */
  str: (off: number, len: number) => string;
}

const NO_HASH = '0'.repeat(CREDENTIAL_BYTES * 2);

/** Reads a record's fields at word `base`. */
export function readRecord(r: RecordLayout, s: RecordSource, base: number): Record<string, unknown> {
  const w = s.words;
  const flags = w[base + FLAGS]!;
  const out: Record<string, unknown> = {};
  for (let i = 0; i < r.fields.length; i++) {
    const f = r.fields[i]!;
    const at = base + r.at[i]!;
    switch (f.kind) {
      case 'int': out[f.key] = w[at]; break;
      case 'flag': out[f.key] = (flags & (1 << r.at[i]!)) !== 0; break;
      case 'hash': {
        const hex = s.raw.toString('hex', at * 4, at * 4 + CREDENTIAL_BYTES);
        out[f.key] = hex === NO_HASH ? '' : hex;
        break;
      }
      case 'text': out[f.key] = s.str(w[at]!, w[at + 1]!); break;
      case 'list': {
        const text = s.str(w[at]!, w[at + 1]!);
        out[f.key] = text === '' ? [] : text.split(',');
        break;
      }
      case 'info': {
        // A torn read can hand over half a JSON text; the sequence check discards that copy anyway.
        try {
          out[f.key] = streamInfoOf(JSON.parse(s.str(w[at]!, w[at + 1]!)));
        } catch {
          out[f.key] = NO_STREAM_INFO;
        }
      }
    }
  }
  return out;
}
