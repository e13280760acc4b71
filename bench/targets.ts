/**
 * The targets of issues 5 and 10, judged from one run's medians (issue 10's push ratios replace
 * issue 5's; its latency, throughput and memory targets are new). A miss is reported, never thrown: the
 * bench is a report, and noisy machines miss targets that quiet ones meet.
 *
 * @module
 */
import type { ColdStartResult } from './cold-start.js';
import type { ScenarioResult } from './harness.js';
import { HEAP_GROWTH_LIMIT_MB, type MemoryResult } from './memory.js';

/** One target's verdict. */
export interface TargetVerdict {
  status: 'PASS' | 'MISS' | 'N/A';
  target: string;
  measured: string;
}

const x = (n: number) => `${n.toFixed(2)}x`;

function ratioTarget(scenarios: ScenarioResult[], id: string, limit: number, target: string): TargetVerdict {
  const s = scenarios.find((r) => r.id === id);
  if (!s) return { status: 'N/A', target, measured: 'not run' };
  return {
    status: s.ratio <= limit ? 'PASS' : 'MISS',
    target,
    measured: `${x(s.ratio)} (service ${s.service.stats.median.toFixed(1)} ms, baseline ${s.baseline.stats.median.toFixed(1)} ms)`,
  };
}

/** Throughput ratio: how many times the baseline's pushes per second the service falls short by. */
function throughputTarget(scenarios: ScenarioResult[], id: string, limit: number, target: string): TargetVerdict {
  const s = scenarios.find((r) => r.id === id);
  if (!s) return { status: 'N/A', target, measured: 'not run' };
  const perSecond = (median: number) => (s.callsPerRun * 1000) / median;
  return {
    status: s.ratio <= limit ? 'PASS' : 'MISS',
    target,
    measured: `${x(s.ratio)} (service ${perSecond(s.service.stats.median).toFixed(0)} pushes/s, baseline ${perSecond(s.baseline.stats.median).toFixed(0)} pushes/s)`,
  };
}

/** Judges every target the run has figures for. */
export function judgeTargets(scenarios: ScenarioResult[], sweep: ScenarioResult[], cold: ColdStartResult[], latency: ScenarioResult[] = [], memory?: MemoryResult): TargetVerdict[] {
  const out = [
    ratioTarget(scenarios, 'push-create-1000', 1.8, 'a push of 1,000 new records within 1.8x the baseline'),
    ratioTarget(scenarios, 'push-update-1000', 1.7, 'a push of 1,000 updates within 1.7x the baseline'),
    ratioTarget(scenarios, 'push-mixed-100', 1.8, 'the typical 100-change push within 1.8x the baseline'),
    ratioTarget(sweep, 'sweep-10', 2.0, 'a push of 10 mixed changes within 2.0x the baseline'),
    ratioTarget(scenarios, 'pull-full', 1.3, 'a full pull within 1.3x the baseline'),
  ];

  const trips = sweep.map((s) => s.service.roundTrips);
  const constant = trips.length > 0 && trips.every((t) => t === trips[0]);
  out.push({
    status: trips.length === 0 ? 'N/A' : constant && Math.max(...trips) <= 6 ? 'PASS' : 'MISS',
    target: 'SQL round trips per push constant in the batch size, and at most 6',
    measured: sweep.map((s) => `${s.rowsPerRun}: ${s.service.roundTrips}`).join(', ') + ` (baseline: ${sweep.map((s) => s.baseline.roundTrips).join(', ')})`,
  });

  const link = latency.find((s) => s.id === 'latency-5');
  out.push(
    link
      ? {
          status: link.ratio <= 1.15 ? 'PASS' : 'MISS',
          target: 'a typical sync (push 10, pull to the head) over a 5 ms link within 1.15x the baseline',
          measured: `${x(link.ratio)} (median service ${link.service.stats.median.toFixed(1)} ms, baseline ${link.baseline.stats.median.toFixed(1)} ms; p95 ${link.service.stats.p95.toFixed(1)} vs ${link.baseline.stats.p95.toFixed(1)} ms)`,
        }
      : { status: 'N/A', target: 'a typical sync over a 5 ms link within 1.15x the baseline', measured: 'not run' },
  );
  out.push(throughputTarget(scenarios, 'parallel-16', 2.0, '16 users pushing in parallel within 2x the baseline\'s pushes per second'));
  out.push(
    memory
      ? {
          status: memory.serviceGrowthMb <= HEAP_GROWTH_LIMIT_MB ? 'PASS' : 'MISS',
          target: `no heap growth across repeated pushes (at most ${HEAP_GROWTH_LIMIT_MB} MiB after full GCs over ${memory.pushes.toLocaleString('en-US')} pushes)`,
          measured: `service ${memory.serviceGrowthMb.toFixed(1)} MiB, baseline ${memory.baselineGrowthMb.toFixed(1)} MiB`,
        }
      : { status: 'N/A', target: 'no heap growth across repeated pushes', measured: 'not run' },
  );

  const small = scenarios.find((s) => s.id === 'pull-incremental-small');
  const large = scenarios.find((s) => s.id === 'pull-incremental-large');
  const growth = small && large ? large.service.stats.median / small.service.stats.median : Number.NaN;
  out.push({
    status: Number.isNaN(growth) ? 'N/A' : growth <= 1.2 ? 'PASS' : 'MISS',
    target: `an incremental pull from the ${large ? large.title.split(' from ')[1] : 'large'} vault within 1.2x of the same pull from the ${small ? small.title.split(' from ')[1] : 'small'} vault`,
    measured: small && large ? `${x(growth)} (${large.service.stats.median.toFixed(2)} ms vs ${small.service.stats.median.toFixed(2)} ms)` : 'not run',
  });

  const pkg = cold.find((c) => c.variant === 'package-default');
  const reflection = cold.find((c) => c.variant === 'reflection');
  const prebuilt = cold.find((c) => c.variant === 'prebuilt');
  if (pkg) {
    const built = pkg.configFrom?.startsWith('dist/') ?? false;
    out.push({
      // From the sources ts-morph is expected; only the build says what production loads.
      status: !built ? 'N/A' : pkg.tsMorphLoaded ? 'MISS' : 'PASS',
      target: 'production code does not load ts-morph at run time',
      measured: built
        ? `${pkg.configFrom ?? 'the package'} ${pkg.tsMorphLoaded ? 'loads' : 'does not load'} ts-morph; init ${pkg.init.median.toFixed(0)} ms, process start to connected ${pkg.total.median.toFixed(0)} ms`
        : 'dist/ is not built; run `npm run build` before the bench to measure the built package',
    });
  }
  if (reflection && prebuilt) {
    out.push({
      status: prebuilt.total.median < reflection.total.median ? 'PASS' : 'MISS',
      target: 'a prebuilt metadata cache starts faster than runtime reflection',
      measured: `init ${prebuilt.init.median.toFixed(0)} ms vs ${reflection.init.median.toFixed(0)} ms; process start to connected ${prebuilt.total.median.toFixed(0)} ms vs ${reflection.total.median.toFixed(0)} ms`,
    });
  }
  return out;
}
