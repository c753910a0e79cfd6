/**
 * One mount's listeners in one worker, each a position in the stream ring
 * (stream-ring.ts). Caught-up listeners get each new chunk as it arrives.
 * A listener whose connection backs up is left at its position and resumes
 * from there when it drains; if the ring moves past its position (it lags
 * by more than the queue size) it is dropped, so a slow listener never
 * slows the others and memory per listener stays at most one chunk.
 *
 * Listeners on plain TCP are handed to native code (fan-send.ts), which
 * keeps a copy of the ring at the same offsets and does all of this for
 * them; the rest (TLS, uWS, or all without the addon) are served here.
 */
import { Crowd } from './fan-send.ts';
import { ICY_METAINT, IcyInserter, icyBlock } from './icy.ts';
import type { Session } from './hub-client.ts';
import type { HandedOver, Sink } from './sink.ts';
import { StreamRing } from './stream-ring.ts';

/** Room in native code's copy of the ring for the chunk the hub's ring may hold beyond its size (an Ogg page is at most 65,307 bytes). */
const CHUNK_SLACK = 128 * 1024;
/** The least the hub's ring keeps (a burst of 0 still leaves a ring to start from). */
const MIN_KEEP = 16 * 1024;

interface Listener {
  sink: Sink;
  who: Session | null;
  /** Absolute offset of the next byte this listener needs. */
  pos: number;
  blocked: boolean;
  icy: IcyInserter | null;
}

export class Fanout {
  readonly ring: StreamRing;
  readonly #listeners = new Set<Listener>();
  readonly #onSent: (bytes: number) => void;
  readonly #onEmpty: () => void;
  /** Native code serving the plain-TCP listeners; null without the addon. */
  readonly #crowd: Crowd | null;
  /** Listeners served by native code, as much of them as is kept here, by their id there. */
  readonly #native = new Map<number, HandedOver>();
  readonly #ringBytes: number;
  readonly #keepBytes: number;
  #metadata = '';

  /**
   * `ringBytes`: how far a listener may lag before it is let go. While no
   * listener is served from JavaScript the ring here keeps only `keepBytes`
   * (where new listeners start: the burst), since native code keeps its own.
   * `onEmpty` is called when the last listener leaves.
   */
  constructor(ringBytes: number, onSent: (bytes: number) => void, onEmpty: () => void, keepBytes = ringBytes) {
    this.#ringBytes = ringBytes;
    this.#onSent = onSent;
    this.#onEmpty = onEmpty;
    // The hub's ring keeps whole chunks, up to a chunk more than its size: the copy has room for one.
    this.#crowd = Crowd.create(ringBytes + CHUNK_SLACK, ICY_METAINT, (id, bytes) => this.#left(id, bytes));
    this.#keepBytes = this.#crowd ? Math.min(Math.max(keepBytes, MIN_KEEP), ringBytes) : ringBytes;
    this.ring = new StreamRing(this.#keepBytes);
  }

  get size(): number {
    return this.#listeners.size + this.#native.size;
  }

  /** Listeners served by native code. */
  get nativeSize(): number {
    return this.#native.size;
  }

  /** The stream title for listeners that asked for ICY metadata. */
  get metadata(): string {
    return this.#metadata;
  }

  set metadata(text: string) {
    if (text === this.#metadata) return;
    this.#metadata = text;
    this.#crowd?.meta(icyBlock(text));
  }

  sessions(): Session[] {
    const out: Session[] = [];
    for (const l of this.#listeners) if (l.who) out.push(l.who);
    for (const l of this.#native.values()) if (l.who) out.push(l.who);
    return out;
  }

  /** A listener native code served has left (closed, reset, or let go for lagging). */
  #left(id: number, bytes: number): void {
    const l = this.#native.get(id);
    if (!l) return;
    this.#native.delete(id);
    l.done(bytes);
    if (this.size === 0) this.#onEmpty();
  }

  /**
   * Adds a listener that starts at `pos` after the `preamble` (the Ogg
   * codec headers), with ICY metadata blocks when `icy`.
   */
  add(sink: Sink, who: Session | null, icy: boolean, pos: number, preamble: readonly Buffer[]): void {
    const fd = this.#crowd ? sink.ownableFd() : -1;
    if (fd >= 0) {
      const first = preamble.length === 0 ? null : preamble.length === 1 ? preamble[0]! : Buffer.concat(preamble);
      const id = this.#crowd!.add(fd, pos, first, icy);
      if (id >= 0) {
        this.#native.set(id, sink.handedOver(who));
        return;
      }
    }
    const l: Listener = { sink, who, pos, blocked: false, icy: icy ? new IcyInserter() : null };
    this.#listeners.add(l);
    this.ring.capBytes = this.#ringBytes;
    sink.onClose = () => {
      this.#listeners.delete(l);
      if (this.#listeners.size === 0) this.ring.capBytes = this.#keepBytes;
      if (this.size === 0) this.#onEmpty();
    };
    sink.onDrain = () => this.#flush(l);
    for (const h of preamble) if (!this.#send(l, h)) break;
    this.#flush(l);
  }

  /** Puts `buf` in the ring and sends it to every caught-up listener. */
  append(buf: Buffer, boundary: boolean): void {
    const ring = this.ring;
    ring.push(buf, boundary);
    if (this.#crowd) {
      const sent = this.#crowd.append(buf);
      if (sent > 0) this.#onSent(sent);
    }
    const end = ring.end;
    for (const l of this.#listeners) {
      if (l.blocked) {
        if (ring.lost(l.pos)) l.sink.close();
        continue;
      }
      l.pos = end;
      if (!this.#send(l, buf)) l.blocked = true;
    }
  }

  #send(l: Listener, buf: Buffer): boolean {
    const out = l.icy ? l.icy.transform(buf, this.#metadata) : buf;
    this.#onSent(out.length);
    return l.sink.write(out);
  }

  /** Writes what `l` is missing from the ring, until it is caught up or backs up. */
  #flush(l: Listener): void {
    if (l.sink.closed) return;
    const ring = this.ring;
    if (ring.lost(l.pos)) {
      // It lagged by more than the queue: let it go, as Icecast does.
      l.sink.close();
      return;
    }
    const chunks = ring.chunks;
    let i = ring.indexOf(l.pos);
    while (i >= 0 && i < chunks.length) {
      const c = chunks[i]!;
      const from = l.pos - c.off;
      l.pos = c.off + c.buf.length;
      if (!this.#send(l, from === 0 ? c.buf : c.buf.subarray(from))) {
        l.blocked = true;
        return;
      }
      i++;
    }
    l.blocked = false;
  }

  /** Lets every listener go (their sinks closed) and empties the ring. */
  close(): void {
    const all = [...this.#listeners];
    this.#listeners.clear();
    for (const l of all) l.sink.close();
    if (this.#crowd) {
      const native = [...this.#native];
      this.#native.clear();
      for (const [id, l] of native) l.done(Math.max(0, this.#crowd.close(id)));
      this.#crowd.free();
    }
    this.ring.clear();
  }
}
