/**
 * The least work a soak run must have done to count as a pass. Zero violations prove nothing
 * about a run that stopped after a handful of steps (issue #14, item 12: `--duration-ms 100`
 * "passed" with 17 steps and no fault), so a run also has to reach minimum counts of pushes,
 * pulls and, in the modes that inject them, faults, purges and restarts. A run below any of them
 * fails, whatever the invariants say.
 *
 * @module
 */

/** What a run did, as far as the minimums look at it. */
export interface RunCounts {
  pushes: number;
  pulls: number;
  faults: number;
  purges: number;
  restarts: number;
  /** Devices woken from a sleep past a purge of a deletion they never saw. */
  staleWakes: number;
}

/** The counts a run must reach; a mode that is off has no minimum (null). */
export type Minimums = { [K in keyof RunCounts]: number | null };

/** The modes and the planned work that the default minimums derive from. */
export interface MinimumBasis {
  /** Devices in all (users x devices per user). */
  devices: number;
  /** Steps per device. */
  ops: number;
  faults: boolean;
  purges: boolean;
  restarts: boolean;
}

/**
 * Default minimums: one planned step in sixteen as answered pushes, one in forty as pulled pages,
 * and a floor of injected events per mode that a 30-second run reaches many times over. Low enough
 * for the slowest place CI runs it: TLS through PgBouncer with faults on a loaded 2-core machine,
 * where every fault costs a TLS reconnect and the quick run answered 71 to 131 pushes (of 720
 * planned steps). Still about ten times what a run cut short reaches (`--quick --duration-ms 100`:
 * 5 pushes). With restarts the server is away for a tenth to a fifth of the run, so the push
 * minimum is one step in twenty-four.
 */
export function defaultMinimums(basis: MinimumBasis): Minimums {
  const steps = basis.devices * basis.ops;
  return {
    pushes: Math.max(1, Math.ceil(steps / (basis.restarts ? 24 : 16))),
    pulls: Math.max(1, Math.ceil(steps / 40)),
    faults: basis.faults ? 20 : null,
    purges: basis.purges ? 3 : null,
    restarts: basis.restarts ? 2 : null,
    staleWakes: basis.purges ? 1 : null,
  };
}

/** One minimum that was not reached. */
export interface Shortfall {
  count: keyof RunCounts;
  reached: number;
  minimum: number;
}

/** The minimums `counts` fell short of; empty when the run did enough work. */
export function shortfalls(counts: RunCounts, minimums: Minimums): Shortfall[] {
  const out: Shortfall[] = [];
  for (const count of Object.keys(minimums) as (keyof RunCounts)[]) {
    const minimum = minimums[count];
    if (minimum !== null && counts[count] < minimum) out.push({ count, reached: counts[count], minimum });
  }
  return out;
}

/** `pushes 843 (min 180), pulls 230 (min 36), ...` for the summary; modes that are off are left out. */
export function describeMinimums(counts: RunCounts, minimums: Minimums): string {
  return (Object.keys(minimums) as (keyof RunCounts)[])
    .filter((count) => minimums[count] !== null)
    .map((count) => `${LABELS[count]} ${counts[count]}${counts[count] < (minimums[count] as number) ? ' <' : ' >='} ${minimums[count]}`)
    .join(', ');
}

const LABELS: Record<keyof RunCounts, string> = {
  pushes: 'pushes',
  pulls: 'pulls',
  faults: 'faults',
  purges: 'purges',
  restarts: 'restarts',
  staleWakes: 'stale wakes',
};
