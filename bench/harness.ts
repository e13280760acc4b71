/**
 * The side-by-side runner every scenario goes through: per repetition, fresh identical data for
 * the service and the baseline, both run back to back in alternating order (so neither always
 * gets the warmer cache), then their results are compared and the data dropped.
 *
 * Before the timed repetitions comes one untimed run with the driver-level query counter on. It
 * also warms up (JIT, connection pools, plan caches); the bench's first step, the judge walk, has
 * already opened connections and run every statement once. Like every run, it is checked.
 *
 * @module
 */
import type pg from 'pg';
import type { BaselineSync, SyncImplementation } from './baseline.js';
import type { Findings } from './compare.js';
import { measure, stats, type Stats } from './measure.js';
import type { BenchPlan } from './plan.js';
import type { QueryCounter } from './query-counter.js';

/** The two implementations under comparison. */
export type ImplName = 'service' | 'baseline';

/** Everything a scenario needs. */
export interface BenchContext {
  plan: BenchPlan;
  /** A pool of its own for seeding and checks, so they never use the measured connections. */
  seedPool: pg.Pool;
  impls: Record<ImplName, SyncImplementation>;
  /** The baseline again, for its own statement count (cross-checks the driver count). */
  baseline: BaselineSync;
  counter: QueryCounter;
  findings: Findings;
  /** Each implementation's connection pool right now: connections in use, callers waiting, size. */
  poolProbes: Record<ImplName, () => { used: number; waiting: number; size: number }>;
  /** Progress lines (stderr), so stdout stays the report. */
  log(line: string): void;
}

/** One implementation's figures in one scenario. */
export interface ImplFigures {
  /** Wall time of each timed repetition, ms. */
  timingsMs: number[];
  stats: Stats;
  /** Highest RSS sampled during its timed repetitions, MiB. */
  peakRssMb: number;
  /** Statements per call (push or pull), from the counting run; BEGIN and COMMIT included. */
  roundTrips: number;
  /** The statements of the counting run's first call, for the report. */
  statements: string[];
}

/** Both implementations' figures in one scenario. */
export interface SideBySide {
  service: ImplFigures;
  baseline: ImplFigures;
  /** Median of the service over median of the baseline. */
  ratio: number;
}

/** How one scenario prepares, runs, checks and cleans up a repetition. */
export interface Trial<P, R> {
  /** Calls (pushes or pulls) per run, to turn a statement count into "per call". */
  calls: number;
  /** Fresh data for repetition `rep`, one copy per implementation. */
  prepare(rep: number): Promise<Record<ImplName, P>>;
  /** The measured work. */
  run(impl: SyncImplementation, prepared: P): Promise<R>;
  /** Compares the two results (and what they left in the database); records findings. */
  check(results: Record<ImplName, R>, prepared: Record<ImplName, P>): Promise<void>;
  /** Removes the repetition's data. */
  cleanup(prepared: Record<ImplName, P>): Promise<void>;
}

const COUNTING = -1;

/** What one trial has gathered so far. */
class Tally<P, R> {
  readonly timings: Record<ImplName, number[]> = { service: [], baseline: [] };
  readonly peaks: Record<ImplName, number> = { service: 0, baseline: 0 };
  counts: Record<ImplName, { count: number; statements: string[] }> = { service: { count: 0, statements: [] }, baseline: { count: 0, statements: [] } };

  constructor(
    readonly label: string,
    readonly trial: Trial<P, R>,
  ) {}

  /** One repetition: prepare, run both implementations in alternating order, check, clean up. */
  async rep(ctx: BenchContext, rep: number): Promise<void> {
    const { trial } = this;
    const prepared = await trial.prepare(rep);
    const results = {} as Record<ImplName, R>;
    const order: ImplName[] = (rep & 1) === 0 ? ['service', 'baseline'] : ['baseline', 'service'];
    for (const name of order) {
      if (rep === COUNTING) {
        const ownBefore = ctx.baseline.queries;
        ctx.counter.start();
        results[name] = await trial.run(ctx.impls[name], prepared[name]);
        this.counts[name] = ctx.counter.stop();
        const own = ctx.baseline.queries - ownBefore;
        // The baseline counts its own statements; the driver must have seen exactly those.
        if (name === 'baseline' && own !== this.counts[name].count) {
          ctx.findings.mismatches.push(`${this.label}: the driver counted ${this.counts[name].count} statements, the baseline sent ${own}`);
        }
      } else {
        const m = await measure(() => trial.run(ctx.impls[name], prepared[name]));
        results[name] = m.value;
        this.timings[name].push(m.ms);
        this.peaks[name] = Math.max(this.peaks[name], m.peakRssMb);
      }
    }
    await trial.check(results, prepared);
    await trial.cleanup(prepared);
  }

  figures(ctx: BenchContext): SideBySide {
    const calls = this.trial.calls;
    const of = (name: ImplName): ImplFigures => ({
      timingsMs: this.timings[name],
      stats: stats(this.timings[name]),
      peakRssMb: this.peaks[name],
      roundTrips: this.counts[name].count / calls,
      statements: this.counts[name].statements.slice(0, Math.ceil(this.counts[name].count / calls)),
    });
    const service = of('service');
    const baseline = of('baseline');
    const result = { service, baseline, ratio: service.stats.median / baseline.stats.median };
    ctx.log(`  ${this.label}: service ${service.stats.median.toFixed(1)} ms, baseline ${baseline.stats.median.toFixed(1)} ms (x${result.ratio.toFixed(2)})`);
    return result;
  }
}

/**
 * Runs `trial` for `reps` timed repetitions per implementation (plus the counting run) and
 * returns both implementations' figures.
 */
export async function sideBySide<P, R>(ctx: BenchContext, label: string, reps: number, trial: Trial<P, R>): Promise<SideBySide> {
  const [result] = await interleaved(ctx, reps, [{ label, trial }]);
  return result as SideBySide;
}

/**
 * Runs several trials repetition by repetition (rep 1 of each, then rep 2 of each, ...), for
 * figures that are compared with each other: a change in machine load then hits all of them
 * alike instead of whichever ran last.
 */
export async function interleaved(ctx: BenchContext, reps: number, trials: { label: string; trial: Trial<unknown, unknown> }[]): Promise<SideBySide[]> {
  const tallies = trials.map(({ label, trial }) => new Tally(label, trial));
  for (let rep = COUNTING; rep < reps; rep++) {
    for (const tally of tallies) await tally.rep(ctx, rep);
  }
  return tallies.map((t) => t.figures(ctx));
}

/** One row group of the report: a scenario and both implementations' figures. */
export interface ScenarioResult extends SideBySide {
  /** Stable key, used by the targets and in results.json. */
  id: string;
  title: string;
  /** Rows written or read per run, for rows/s. */
  rowsPerRun: number;
  /** Calls (pushes or pulls) per run. */
  callsPerRun: number;
  /** What the throughput column counts: rows, or (for the parallel scenario) pushes. */
  throughputUnit: 'rows/s' | 'pushes/s';
}

/** Runs a trial and labels its figures as a scenario. */
export async function scenario<P, R>(
  ctx: BenchContext,
  meta: { id: string; title: string; rowsPerRun: number; reps: number; throughputUnit?: ScenarioResult['throughputUnit'] },
  trial: Trial<P, R>,
): Promise<ScenarioResult> {
  const figures = await sideBySide(ctx, meta.title, meta.reps, trial);
  return { id: meta.id, title: meta.title, rowsPerRun: meta.rowsPerRun, callsPerRun: trial.calls, throughputUnit: meta.throughputUnit ?? 'rows/s', ...figures };
}
