/**
 * Memory of a process serving pushes (issue 10): peak RSS and the heap after `memoryPushes`
 * pushes, for the service and the baseline, each in a child process of its own
 * (`bench/memory-child.ts`), so neither's garbage counts against the other. The leak check: the
 * heap after a full collection must not keep climbing across the run.
 *
 * @module
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runJsonChild } from './json-child.js';
import type { MemorySample } from './memory-child.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Most the heap may grow, MiB, from the first tenth of the run to the end (after full GCs), for
 * the run to count as leak-free: V8 keeps compiled code and inline caches growing a little for a
 * while. A per-push leak of even one 10-change push's objects (tens of KiB) over 10,000 pushes
 * is hundreds of MiB.
 */
export const HEAP_GROWTH_LIMIT_MB = 8;

/** Both children's figures. */
export interface MemoryResult {
  pushes: number;
  service: MemorySample;
  baseline: MemorySample;
  /** Heap growth of the service from the first checkpoint after the warm-up's to the last, MiB. */
  serviceGrowthMb: number;
  baselineGrowthMb: number;
}

function child(impl: 'service' | 'baseline', url: string, pushes: number, warmUp: number): Promise<MemorySample> {
  return runJsonChild<MemorySample>('bench/memory-child.ts', [impl], ROOT, { BENCH_DATABASE_URL: url, BENCH_PUSHES: String(pushes), BENCH_WARM_UP: String(warmUp) });
}

const growth = (s: MemorySample) => (s.heapMb.at(-1) ?? 0) - (s.heapMb[1] ?? s.heapMb[0] ?? 0);

/** Runs the service's child, then the baseline's. */
export async function memoryScenario(url: string, pushes: number, warmUp: number): Promise<MemoryResult> {
  const service = await child('service', url, pushes, warmUp);
  const baseline = await child('baseline', url, pushes, warmUp);
  return { pushes, service, baseline, serviceGrowthMb: growth(service), baselineGrowthMb: growth(baseline) };
}
