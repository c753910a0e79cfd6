/**
 * Answers over UDP. From a batched socket (recvmmsg/sendmmsg) the addon
 * has answered the questions it learned already; each of the others is
 * planned here, written into the batch's send buffer and taught to the
 * addon, and one send hands them all to the kernel past the addon's rate
 * limiting. From node:dgram one datagram at a time, rate-limited here, with
 * the socket's send queue bounded.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { LatencyRecorder } from '../ipc/latency.ts';
import { S } from '../ipc/worker-stats.ts';
import { DNS_LIMITS } from './limits.ts';
import type { LocalCounts } from './local-counts.ts';
import { questionLength, slipInPlace, writePlan, type Plan } from './plan.ts';
import type { Responder } from './responder.ts';
import { prefixKey, type Rrl } from './rrl.ts';
import type { UdpBatch } from './udp-batch.ts';

/** Room kept free in a batch's send buffer: more than the largest UDP answer. */
const OUT_RESERVE = 66_000;

export interface UdpAnswerer {
  responder: Responder;
  /** Rate limiting of the node:dgram path (the addon limits batched sockets itself). */
  rrl: Rrl;
  counts: LocalCounts;
  latency?: LatencyRecorder;
}

/** Answers the datagrams of a batch of `n` that the addon left (length not 0). */
export function answerBatch(a: UdpAnswerer, b: UdpBatch, n: number): void {
  const t0 = performance.now();
  const responder = a.responder;
  const out = b.out;
  const meta = b.meta;
  let off = 0;
  let k = 0;
  let sent = 0;
  for (let i = 0; i < n; i++) {
    const len = b.lens[i]!;
    if (len === 0) continue; // answered by the addon, or larger than any query radiod answers
    let p: Plan | null;
    try {
      p = responder.plan(b.in.subarray(i * b.slot, i * b.slot + len), true);
    } catch {
      continue; // never reached by design; a bug must not take the worker down
    }
    if (p === null) continue;
    if (p.answer !== null) b.learn(i, p.answer);
    if (out.length - off < OUT_RESERVE) {
      sent += b.send(k);
      off = 0;
      k = 0;
    }
    const size = writePlan(p, out, off);
    meta[k * 3] = off;
    meta[k * 3 + 1] = size;
    meta[k * 3 + 2] = i;
    k++;
    off += size;
  }
  sent += b.send(k);
  const us = (performance.now() - t0) * 1000;
  // From the batch's arrival to its answers handed to the kernel, for each answer sent (not those rate limiting dropped).
  if (sent > 0) a.latency?.record('dns_answer_us', us, sent);
}

/** Answers one datagram received by node:dgram. */
export function answerDatagram(a: UdpAnswerer, sock: UdpSocket, msg: Buffer, address: string, port: number): void {
  const t0 = performance.now();
  let res: Buffer | null;
  try {
    res = a.responder.answer(msg, true);
  } catch {
    return; // never reached by design; a bug must not take the worker down
  }
  if (!res) return;
  if (sock.getSendQueueSize() > DNS_LIMITS.udpSendQueueBytes) return;
  const verdict = a.rrl.checkKey(prefixKey(address), Date.now());
  if (verdict === 'drop') {
    a.counts.add(S.DNS_RRL_DROPPED);
    return;
  }
  if (verdict === 'slip') {
    a.counts.add(S.DNS_RRL_SLIPPED);
    res = res.subarray(0, slipInPlace(res, 0, res.readUInt16BE(4) === 1 ? questionLength(res) : 0));
  }
  sock.send(res, port, address);
  // From the datagram's arrival to its answer handed to the kernel, in µs.
  a.latency?.record('dns_answer_us', (performance.now() - t0) * 1000);
}
