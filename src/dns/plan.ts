/**
 * An answer as a plan: the header fields and the parts (the client's
 * question, the cached records) that make the message, so that it is
 * written once, straight into the buffer it leaves from (a batch's send
 * buffer, a TCP frame), without an intermediate message.
 */
import type { Answer } from './answers.ts';
import { TC } from './wire.ts';

/** What a query gets: a ready message (header-only answers) or the parts of a cached answer. */
export interface Plan {
  id: number;
  flags: number;
  counts: readonly [number, number, number];
  question: Buffer;
  body: Buffer;
  size: number;
  /** The cached answer this plan was made from, when the same question always gets it (in another rotation). */
  answer: Answer | null;
}

/** An answer without the question (the query could not be read that far). */
export const NO_QUESTION = Buffer.alloc(0);
const EMPTY = NO_QUESTION;
const NO_COUNTS = [0, 0, 0] as const;

/** A bare header answer (FORMERR, NOTIMP, REFUSED): no records, the question when there is one. */
export function headerOnly(id: number, flags: number, question: Buffer): Plan {
  return { id, flags, counts: NO_COUNTS, question, body: EMPTY, size: 12 + question.length, answer: null };
}

/** Writes the message `p` describes at `off`; returns its length. */
export function writePlan(p: Plan, out: Buffer, off: number): number {
  out.writeUInt16BE(p.id, off);
  out.writeUInt16BE(p.flags, off + 2);
  out.writeUInt16BE(p.question.length > 0 ? 1 : 0, off + 4);
  out.writeUInt16BE(p.counts[0], off + 6);
  out.writeUInt16BE(p.counts[1], off + 8);
  out.writeUInt16BE(p.counts[2], off + 10);
  p.question.copy(out, off + 12);
  p.body.copy(out, off + 12 + p.question.length);
  return p.size;
}

/**
 * Turns the answer at `off` into an RRL slip in place: header and question
 * only, TC set, so a real client behind a spoofed flood retries over TCP.
 */
export function slipInPlace(out: Buffer, off: number, questionBytes: number): number {
  out.writeUInt16BE(out.readUInt16BE(off + 2) | TC, off + 2);
  out.writeUInt16BE(0, off + 6);
  out.writeUInt16BE(0, off + 8);
  out.writeUInt16BE(0, off + 10);
  return 12 + questionBytes;
}

/** Length of the question section of a message with one question (uncompressed name). */
export function questionLength(msg: Buffer): number {
  let off = 12;
  while (off < msg.length && msg[off] !== 0) off += 1 + msg[off]!;
  return off + 1 + 4 - 12;
}
