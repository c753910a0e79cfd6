/**
 * One mount's listeners in one worker, each a position in the stream ring
 * (stream-ring.ts). Caught-up listeners get each new chunk as it arrives.
 * A listener whose connection backs up is left at its position and resumes
 * from there when it drains; if the ring moves past its position (it lags
 * by more than the queue size) it is dropped, so a slow listener never
 * slows the others and memory per listener stays at most one chunk.
 */
import { SendBatch } from './fan-send.ts';
import { IcyInserter } from './icy.ts';
import type { Session } from './hub-client.ts';
import type { Sink } from './sink.ts';
import { StreamRing } from './stream-ring.ts';

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
  /** Caught-up listeners whose next chunk goes to their socket in one call for all (fan-send.ts); null without it. */
  readonly #direct = SendBatch.create<Listener>();
  /** The stream title for listeners that asked for ICY metadata. */
  metadata = '';

  /** `onEmpty` is called when the last listener leaves. */
  constructor(ringBytes: number, onSent: (bytes: number) => void, onEmpty: () => void) {
    this.ring = new StreamRing(ringBytes);
    this.#onSent = onSent;
    this.#onEmpty = onEmpty;
  }

  get size(): number {
    return this.#listeners.size;
  }

  sessions(): Session[] {
    const out: Session[] = [];
    for (const l of this.#listeners) if (l.who) out.push(l.who);
    return out;
  }

  /**
   * Adds a listener that starts at `pos` after the `preamble` (the Ogg
   * codec headers), with ICY metadata blocks when `icy`.
   */
  add(sink: Sink, who: Session | null, icy: boolean, pos: number, preamble: readonly Buffer[]): void {
    const l: Listener = { sink, who, pos, blocked: false, icy: icy ? new IcyInserter() : null };
    this.#listeners.add(l);
    sink.onClose = () => {
      this.#listeners.delete(l);
      if (this.#listeners.size === 0) this.#onEmpty();
    };
    sink.onDrain = () => this.#flush(l);
    for (const h of preamble) if (!this.#send(l, h)) break;
    this.#flush(l);
  }

  /** Puts `buf` in the ring and sends it to every caught-up listener. */
  append(buf: Buffer, boundary: boolean): void {
    const ring = this.ring;
    ring.push(buf, boundary);
    const end = ring.end;
    const direct = this.#direct;
    for (const l of this.#listeners) {
      if (l.blocked) {
        if (ring.lost(l.pos)) l.sink.close();
        continue;
      }
      l.pos = end;
      if (direct !== null && l.icy === null) {
        const fd = l.sink.directFd();
        if (fd >= 0) {
          direct.add(l, fd);
          continue;
        }
      }
      if (!this.#send(l, buf)) l.blocked = true;
    }
    if (direct === null) return;
    const n = direct.send(buf);
    if (n === 0) return;
    this.#onSent(n * buf.length);
    for (let i = 0; i < n; i++) {
      const l = direct.take(i);
      if (!l.sink.afterDirect(buf, direct.result(i))) l.blocked = true;
    }
  }

  #send(l: Listener, buf: Buffer): boolean {
    const out = l.icy ? l.icy.transform(buf, this.metadata) : buf;
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
    this.ring.clear();
  }
}
