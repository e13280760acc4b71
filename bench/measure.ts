/**
 * Timing statistics and memory sampling.
 *
 * Peak RSS is per process, and the service and the baseline share this one, so a measured run
 * samples RSS every few milliseconds while it runs and reports the highest sample: the process's
 * footprint while that implementation worked, garbage not yet collected included. No GC is forced
 * before a run: a full collection leaves V8's young generation small, and the next
 * allocation-heavy run then pays for growing it again (measured: +50% on a 1,000-update service
 * push), which a long-running server never does.
 *
 * @module
 */

/** Summary of repeated timings, in milliseconds. */
export interface Stats {
  n: number;
  median: number;
  min: number;
  max: number;
  p10: number;
  p90: number;
  p95: number;
}

/** Linear-interpolated quantile of sorted values. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

/** Median, extremes and p10/p90/p95 of `values`. */
export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    min: sorted[0] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
    p10: quantile(sorted, 0.1),
    p90: quantile(sorted, 0.9),
    p95: quantile(sorted, 0.95),
  };
}

/** Samples RSS until stopped; `stop()` returns the peak in MiB. */
export function sampleRss(intervalMs = 5): { stop(): number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return peak / (1024 * 1024);
    },
  };
}

/** Runs `fn` once, returning its result, wall time (ms) and peak RSS (MiB). */
export async function measure<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; peakRssMb: number }> {
  const rss = sampleRss();
  const start = performance.now();
  try {
    const value = await fn();
    return { value, ms: performance.now() - start, peakRssMb: rss.stop() };
  } finally {
    rss.stop();
  }
}
