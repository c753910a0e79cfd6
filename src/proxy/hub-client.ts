/**
 * What a hub and the doors that hand it listeners agree on: the response
 * head a hub gives a listener, and a listener as the hub sees it. Kept apart
 * from the hub so that the doors depend on this contract and not on how the
 * hub keeps its stream.
 */
import type { Sink } from './sink.ts';

export interface StreamHead {
  contentType: string;
  /** icy-* and ice-* headers passed on from the upstream. */
  headers: [string, string][];
  /** Whether the stream can carry ICY metadata (not Ogg). */
  icyCapable: boolean;
}

/** A listener waiting for, or receiving, the stream. */
export interface Client {
  /** Wants ICY metadata blocks (Icy-MetaData: 1). */
  icy: boolean;
  /** Writes the response head; returns the sink, or null if the client left meanwhile. */
  begin(head: StreamHead): Sink | null;
  /** The hub could not get the stream: answer with an error. */
  fail(status: number, text: string): void;
  /** Who is listening, for `radioctl listeners`. */
  who?: Session;
}

/** A listener as `radioctl listeners` shows it. */
export interface Session {
  address: string;
  userAgent: string;
  /** When it connected (Unix ms). */
  since: number;
}
