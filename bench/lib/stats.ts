/**
 * Latency statistics for benchmarks: samples in microseconds in, a summary
 * out. Percentiles use the nearest-rank method on the sorted samples, so every
 * reported number is a latency that was actually observed.
 */

/** Summary of one series of latency samples (all values in microseconds). */
export interface LatencySummary {
  /** Number of samples. */
  n: number;
  medianUs: number;
  p95Us: number;
  p99Us: number;
  meanUs: number;
  minUs: number;
  maxUs: number;
  /** Calls per second one caller achieves back to back: 1e6 / mean latency. */
  opsPerSec: number;
}

/**
 * Summarizes latency samples given in microseconds.
 *
 * @example
 * ```ts
 * const s = summarize([120, 130, 500]); // s.medianUs === 130
 * ```
 */
export function summarize(samplesUs: readonly number[]): LatencySummary {
  if (samplesUs.length === 0) {
    throw new Error('summarize: no samples (the benchmark loop ran zero iterations)');
  }
  const sorted = Float64Array.from(samplesUs).sort();
  const sum = sorted.reduce((a, b) => a + b, 0);
  const mean = sum / sorted.length;
  return {
    n: sorted.length,
    medianUs: round1(percentile(sorted, 50)),
    p95Us: round1(percentile(sorted, 95)),
    p99Us: round1(percentile(sorted, 99)),
    meanUs: round1(mean),
    minUs: round1(sorted[0] ?? 0),
    maxUs: round1(sorted[sorted.length - 1] ?? 0),
    opsPerSec: Math.round(1e6 / mean),
  };
}

/** Nearest-rank percentile of ascending-sorted samples. */
export function percentile(sorted: Float64Array, p: number): number {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

/** Microseconds elapsed since `start` (a `process.hrtime.bigint()` reading). */
export function elapsedUs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1000;
}

/** Rounds to one decimal: sub-0.1 µs digits are timer noise. */
export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Rounds a ratio to three decimals. */
export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
