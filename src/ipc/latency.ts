/**
 * Live latency histograms (HDR): each worker records into its own
 * histograms and hands them, encoded, to the main thread every couple of
 * seconds when anything changed; the main thread merges the workers' latest
 * and sends every worker the summary that `GET /debug/latency` shows. The
 * hot path only calls recordValue().
 */
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

/** What is measured, with its unit in the name. */
export const LATENCY_KINDS = ['redirect_us', 'dns_answer_us', 'upstream_gap_ms'] as const;
export type LatencyKind = (typeof LATENCY_KINDS)[number];
export type EncodedLatency = Partial<Record<LatencyKind, string>>;

/** Values above this are recorded as this (an hour in ms, over a minute in µs). */
const HIGHEST = 3_600_000;

function histogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST, numberOfSignificantValueDigits: 2 });
}

/**
 * Values below this are counted in a plain array and added to the
 * histogram when it is taken: the redirect and DNS paths record a few
 * microseconds per request, and the histogram's own index arithmetic
 * (logarithms and powers) cost more than the rest of recording.
 */
const SMALL = 128;

export class LatencyRecorder {
  readonly #h = new Map<LatencyKind, Histogram>(LATENCY_KINDS.map((k) => [k, histogram()]));
  readonly #small = new Map<LatencyKind, Float64Array>(LATENCY_KINDS.map((k) => [k, new Float64Array(SMALL)]));
  readonly #dirty = new Set<LatencyKind>();

  record(kind: LatencyKind, value: number, count = 1): void {
    const v = Math.min(HIGHEST, Math.max(1, Math.round(value)));
    if (v < SMALL) this.#small.get(kind)![v]! += count;
    else this.#h.get(kind)!.recordValueWithCount(v, count);
    this.#dirty.add(kind);
  }

  /** The histograms recorded into since the last call (whole, not deltas), or null. */
  take(): EncodedLatency | null {
    if (this.#dirty.size === 0) return null;
    const out: EncodedLatency = {};
    for (const k of this.#dirty) {
      const h = this.#h.get(k)!;
      const small = this.#small.get(k)!;
      for (let v = 1; v < SMALL; v++) {
        if (small[v]! > 0) {
          h.recordValueWithCount(v, small[v]!);
          small[v] = 0;
        }
      }
      out[k] = encodeIntoCompressedBase64(h);
    }
    this.#dirty.clear();
    return out;
  }
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** Every worker's latest histograms, merged per kind. */
export function mergeLatency(perWorker: Iterable<EncodedLatency>): Record<LatencyKind, Histogram> {
  const merged = Object.fromEntries(LATENCY_KINDS.map((k) => [k, histogram()])) as Record<LatencyKind, Histogram>;
  for (const w of perWorker) {
    for (const k of LATENCY_KINDS) {
      const enc = w[k];
      if (enc !== undefined) merged[k].add(decodeFromCompressedBase64(enc));
    }
  }
  return merged;
}

/** Merges every worker's latest histograms into percentiles per kind. */
export function summarize(perWorker: Iterable<EncodedLatency>): Record<LatencyKind, LatencySummary> {
  const out = {} as Record<LatencyKind, LatencySummary>;
  for (const [k, h] of Object.entries(mergeLatency(perWorker)) as [LatencyKind, Histogram][]) {
    out[k] = {
      count: h.totalCount,
      p50: h.getValueAtPercentile(50),
      p90: h.getValueAtPercentile(90),
      p99: h.getValueAtPercentile(99),
      p999: h.getValueAtPercentile(99.9),
      max: h.maxValue,
    };
  }
  return out;
}
