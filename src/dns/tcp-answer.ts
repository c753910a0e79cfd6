/**
 * Answers over TCP, one connection at a time, under bounds that a hostile
 * client cannot stretch (limits.ts): a deadline per query however slowly
 * it trickles, a turn per connection so that others and UDP are served in
 * between, and a budget for what paused connections hold in all.
 */
import type { Socket } from 'node:net';
import { S } from '../ipc/worker-stats.ts';
import { DNS_LIMITS } from './limits.ts';
import type { LocalCounts } from './local-counts.ts';
import { writePlan, type Plan } from './plan.ts';
import type { Responder } from './responder.ts';
import { FrameReader } from './tcp-frames.ts';

/** Bytes reckoned held by a worker's paused TCP connections (DNS_LIMITS.tcpPausedBytes). */
export interface PausedBudget {
  bytes: number;
}

export function serveTcp(c: Socket, responder: Responder, counts: LocalCounts, budget: PausedBudget): void {
  counts.add(S.DNS_TCP);
  c.setNoDelay(true);
  c.on('error', () => undefined);
  const frames = new FrameReader(12, DNS_LIMITS.tcpQueryBytes);
  // One deadline at a time, set when a query starts (its first byte) and when the last one is
  // answered, never moved by bytes arriving: a trickle cannot hold the connection.
  let timer: NodeJS.Timeout | null = null;
  const deadline = (ms: number): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => c.destroy(), ms);
    timer.unref();
  };
  deadline(DNS_LIMITS.tcpIdleMs);
  // A connection stops reading (paused) in two cases: its client does not read the answers (until
  // they drain; past a small queue it is let go), and it has had its turn (tcpTurn queries) while
  // more wait, so that other connections and UDP are served in between. What a paused connection
  // holds counts against the worker's budget until it reads again or closes; past the budget it is
  // let go instead: a thousand clients pipelining without reading cannot hold a thousand buffers.
  let held = 0;
  let draining = false;
  let yielded = false;
  const release = (): void => {
    budget.bytes -= held;
    held = 0;
  };
  c.once('close', () => {
    if (timer) clearTimeout(timer);
    release();
  });
  const pause = (): boolean => {
    if (held === 0) {
      // One more read may land in the stream's buffer after the pause: reckon it at its largest.
      const bytes = frames.retained + c.writableLength + c.readableLength + 65_536;
      if (budget.bytes + bytes > DNS_LIMITS.tcpPausedBytes) {
        c.destroy();
        return false;
      }
      held = bytes;
      budget.bytes += bytes;
    }
    c.pause();
    return true;
  };
  const again = (): void => {
    if (c.destroyed || draining || yielded) return;
    release();
    c.resume();
    serve();
  };
  c.on('drain', () => {
    if (!draining) return;
    draining = false;
    again();
  });
  /** Answers the complete queries received, up to a turn's worth; returns how many it took. */
  const turn = (): number => {
    let n = 0;
    while (!draining && !yielded) {
      if (n === DNS_LIMITS.tcpTurn && frames.buffered > 0) {
        if (pause()) {
          yielded = true;
          setImmediate(() => {
            yielded = false;
            again();
          });
        }
        return n;
      }
      const msg = frames.next();
      if (msg === 'incomplete') return n;
      if (msg === 'not a query') {
        // Too short for a header or longer than any query: nothing sensible to answer.
        c.destroy();
        return n;
      }
      n++;
      let p: Plan | null = null;
      try {
        p = responder.plan(msg, false);
      } catch {
        p = null; // never reached by design; a bug must not take the worker down
      }
      if (!p) continue;
      const frame = Buffer.allocUnsafe(2 + p.size);
      frame.writeUInt16BE(p.size, 0);
      writePlan(p, frame, 2);
      if (!c.write(frame)) {
        if (c.writableLength > DNS_LIMITS.tcpQueueBytes || !pause()) {
          c.destroy();
          return n;
        }
        draining = true;
      }
    }
    return n;
  };
  const serve = (): void => {
    // A query answered: the next one is under way if its first bytes are here, else the connection idles.
    if (turn() > 0 && !c.destroyed) deadline(frames.buffered > 0 ? DNS_LIMITS.tcpQueryMs : DNS_LIMITS.tcpIdleMs);
  };
  c.on('data', (d: Buffer) => {
    if (frames.buffered === 0 && d.length > 0) deadline(DNS_LIMITS.tcpQueryMs);
    frames.push(d);
    serve();
  });
}
