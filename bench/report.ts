/**
 * The bench's output: a markdown report (stdout and `bench/results.md`) and the same figures as
 * JSON (`bench/results.json`).
 *
 * @module
 */
import type { ColdStartResult } from './cold-start.js';
import type { ImplFigures, ScenarioResult } from './harness.js';
import type { MachineInfo } from './machine.js';
import type { Stats } from './measure.js';
import type { LeverResult } from './levers.js';
import type { MemoryResult } from './memory.js';
import type { BenchPlan } from './plan.js';
import type { Saturation } from './push-scenarios.js';
import type { RowTriggerCost } from './row-triggers.js';
import type { TargetVerdict } from './targets.js';

/** Everything one run measured. */
export interface BenchResults {
  machine: MachineInfo;
  plan: BenchPlan;
  scenarios: ScenarioResult[];
  sweep: ScenarioResult[];
  coldStart: ColdStartResult[];
  /** The service's push with and without the raw-writer row triggers (`--only=triggers`). */
  rowTriggers?: RowTriggerCost;
  /** The typical sync through a TCP proxy adding a fixed delay each way (`--only=latency`). */
  latency?: ScenarioResult[];
  /** Peak RSS and heap of processes serving pushes (`--only=memory`). */
  memory?: MemoryResult;
  /** Each unit-of-work lever on its own, with against without (`--only=levers`). */
  levers?: LeverResult;
  targets: TargetVerdict[];
  mismatches: string[];
  notes: string[];
  /** Wall time of the whole run, s. */
  durationS: number;
  /** Wall time of each group of scenarios, s. */
  phasesS: Record<string, number>;
  /** Peak RSS of the bench process over the whole run, MiB. */
  processMaxRssMb: number;
}

const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const spread = (s: Stats) => `${ms(s.min)}–${ms(s.max)}`;
const int = (n: number) => Math.round(n).toLocaleString('en-US');

function throughput(s: ScenarioResult, f: ImplFigures): string {
  const perSecond = ((s.throughputUnit === 'pushes/s' ? s.callsPerRun : s.rowsPerRun) * 1000) / f.stats.median;
  return `${int(perSecond)} ${s.throughputUnit}`;
}

function scenarioRows(list: ScenarioResult[]): string[] {
  const rows = [
    '| scenario | implementation | median ms | min–max ms | throughput | service / baseline | round trips per call | peak RSS MiB |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of list) {
    for (const [name, f] of [
      ['service', s.service],
      ['baseline', s.baseline],
    ] as const) {
      rows.push(
        `| ${name === 'service' ? s.title : ''} | ${name} | ${ms(f.stats.median)} | ${spread(f.stats)} | ${throughput(s, f)} | ${name === 'service' ? `**${s.ratio.toFixed(2)}x**` : ''} | ${+f.roundTrips.toFixed(2)} | ${f.peakRssMb.toFixed(0)} |`,
      );
    }
  }
  return rows;
}

/** The markdown report. */
export function renderMarkdown(r: BenchResults): string {
  const m = r.machine;
  const lines: string[] = [
    `# vault-db benchmark (${r.plan.mode} mode)`,
    '',
    `Measured ${m.date} on ${m.os}, ${m.cpus}, ${m.memoryGiB} GiB RAM (load ${m.loadAtStart.toFixed(2)} at start), Node ${m.node}, MikroORM ${m.mikroOrm}, ` +
      `PostgreSQL ${m.postgres} (${m.database === 'embedded' ? 'the embedded server' : m.database}, same machine). ` +
      `The service and the baseline run in one process, on identical fresh data per repetition, in alternating order; ` +
      `timings are wall-clock medians of ${r.plan.pushReps} (single pushes), ${r.plan.importReps} (import), ${r.plan.fullPullReps} (full pull), ` +
      `${r.plan.incrementalReps} (incremental pulls), ${r.plan.parallelReps} (parallel), ${r.plan.sweepReps} (batch sizes), ${r.plan.latencyReps} (each network link) and ${r.plan.coldStartReps} (cold starts) ` +
      `repetitions, after a warm-up and an untimed counting run. ` +
      `Ciphertexts are ${r.plan.ciphertextBytes} random bytes. Run took ${r.durationS.toFixed(0)} s.`,
    '',
    '## Targets (issues 5 and 10)',
    '',
    ...r.targets.map((t) => `- **${t.status}** ${t.target}: ${t.measured}`),
    '',
    '## Scenarios',
    '',
    ...scenarioRows(r.scenarios),
    '',
    'Round trips are counted at the driver (`pg.Client#query`, BEGIN and COMMIT included) in a separate untimed run. ' +
      'Peak RSS is the highest sample (every 5 ms) of the shared bench process while that implementation ran, uncollected garbage included.',
    '',
    '## Push time against batch size',
    '',
    '![push time against batch size](push-vs-batch.svg)',
    '',
    ...scenarioRows(r.sweep),
    '',
  ];

  const parallel = r.scenarios.filter((s) => s.id.startsWith('parallel-')) as (ScenarioResult & { saturation?: Partial<Record<'service' | 'baseline', Saturation>> })[];
  if (parallel.length > 0) {
    lines.push(
      '## Throughput under concurrency',
      '',
      'Each user pushes to a vault of its own; both implementations have the same pool size. What limited each run is sampled every 5 ms: the CPU of this Node process (1.00 = one core, all an event loop can use), the busy share of all the machine\'s cores (PostgreSQL runs on the same machine), connections in use and callers waiting for one. The verdict: Node CPU when it is at 0.85 of a core or more; else the machine\'s CPUs when they are 90% busy (Node and PostgreSQL compete for them; a full pool then only queues); else the pool when callers queued for a connection on average; else the database.',
      '',
      '| users | implementation | pushes/s | service / baseline | Node CPU (cores) | machine CPU busy | pool used (max of size) | waiting for a connection (avg, max) | limited by |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---|',
    );
    for (const s of parallel) {
      for (const name of ['service', 'baseline'] as const) {
        const f = s[name];
        const sat = s.saturation?.[name];
        lines.push(
          `| ${name === 'service' ? s.id.slice('parallel-'.length) : ''} | ${name} | ${int((s.callsPerRun * 1000) / f.stats.median)} | ${name === 'service' ? `**${s.ratio.toFixed(2)}x**` : ''} | ${sat ? sat.nodeCpu.toFixed(2) : ''} | ${sat ? `${(sat.machineCpu * 100).toFixed(0)}%` : ''} | ${sat ? `${sat.poolUsedMax} of ${sat.poolSize}` : ''} | ${sat ? `${sat.poolWaitingAvg.toFixed(1)}, ${sat.poolWaitingMax}` : ''} | ${sat?.limit ?? ''} |`,
        );
      }
    }
    lines.push('');
  }

  if (r.latency && r.latency.length > 0) {
    lines.push(
      '## Latency over a network link',
      '',
      'Both implementations connect through an in-process TCP proxy that holds every chunk for a fixed delay in each direction (1 ms: a database in the same region; 5 ms: across regions). One typical sync: push 10 changes (4 creates, 4 updates, 2 deletes), then pull from the returned cursor until nothing more is waiting. Round trips are statements per sync (push and pull together).',
      '',
      '| link | implementation | median ms | p95 ms | min–max ms | service / baseline (median) | round trips per sync |',
      '|---|---|---:|---:|---:|---:|---:|',
    );
    for (const s of r.latency) {
      for (const name of ['service', 'baseline'] as const) {
        const f = s[name];
        lines.push(
          `| ${name === 'service' ? `${s.id.slice('latency-'.length)} ms each way` : ''} | ${name} | ${ms(f.stats.median)} | ${ms(f.stats.p95)} | ${spread(f.stats)} | ${name === 'service' ? `**${s.ratio.toFixed(2)}x**` : ''} | ${+f.roundTrips.toFixed(2)} |`,
        );
      }
    }
    lines.push('');
  }

  if (r.memory) {
    const m = r.memory;
    const heap = (h: number[]) => h.map((v) => v.toFixed(1)).join(', ');
    lines.push(
      '## Memory of a process serving pushes',
      '',
      `Each implementation in a child process of its own that serves nothing else: 4 users at a time push 10 typical changes each, ${m.pushes.toLocaleString('en-US')} pushes after a warm-up. The heap is measured after a full collection (\`--expose-gc\`) after the warm-up and after every tenth of the run; a leak (a fork or identity map kept per push) would climb from checkpoint to checkpoint.`,
      '',
      '| implementation | peak RSS MiB | heap after the last push MiB | heap growth, first tenth to last MiB | heap at each checkpoint MiB | pushes/s |',
      '|---|---:|---:|---:|---|---:|',
      ...(['service', 'baseline'] as const).map((name) => {
        const s = m[name];
        return `| ${name} | ${s.peakRssMb.toFixed(0)} | ${(s.heapMb.at(-1) ?? 0).toFixed(1)} | ${(name === 'service' ? m.serviceGrowthMb : m.baselineGrowthMb).toFixed(1)} | ${heap(s.heapMb)} | ${int((s.pushes * 1000) / s.ms)} |`;
      }),
      '',
    );
  }

  if (r.levers) {
    const l = r.levers;
    lines.push(
      '## Each unit-of-work lever on its own',
      '',
      `The service's pushes with every lever against the same pushes with one lever turned off (a patch in \`bench/levers/\` applied to a copy of the code). Each variant runs in a child process of its own and a fresh database of its own, ${l.rounds} round(s) over all variants in rotating order, ${l.reps} timed push(es) of each kind per child, each into a fresh vault of ${l.vaultSize.toLocaleString('en-US')} records. Below 1.00x the lever saves time.`,
      '',
      '| lever | push | with the lever, median ms | without, median ms | with / without | statements with / without |',
      '|---|---|---:|---:|---:|---:|',
      ...l.rows.map((row, i) => {
        const first = i === 0 || l.rows[i - 1]?.lever !== row.lever;
        return `| ${first ? `${row.lever}: ${row.description}` : ''} | ${row.push} | ${ms(row.withMs)} | ${ms(row.withoutMs)} | **${(row.withMs / row.withoutMs).toFixed(2)}x** | ${row.withStatements} / ${row.withoutStatements} |`;
      }),
      '',
    );
  }

  if (r.coldStart.length > 0) {
    lines.push(
      '## Cold start',
      '',
      'Each start is a fresh `node --import tsx` process (tsx boot is the same for all variants and not counted in init).',
      '',
      '| variant | `MikroORM.init` median ms (min–max) | imports ms | process start to connected ms | ts-morph loaded | max RSS MiB |',
      '|---|---:|---:|---:|---|---:|',
      ...r.coldStart.map(
        (c) =>
          `| ${c.title}${c.configFrom ? ` from ${c.configFrom}` : ''} | ${ms(c.init.median)} (${spread(c.init)}) | ${ms(c.imports.median)} | ${ms(c.total.median)} | ${c.tsMorphLoaded ? 'yes' : 'no'} | ${c.maxRssMb.toFixed(0)} |`,
      ),
      '',
    );
  }

  if (r.rowTriggers) {
    const t = r.rowTriggers;
    lines.push(
      '## Raw-writer row triggers',
      '',
      'The BEFORE row triggers that give raw SQL writers feed positions (`records_place_raw_insert`, `records_place_raw_update`) have WHEN clauses the service\'s own writes never meet (it always sets `seq`). The same service push, timed with both triggers enabled and disabled, alternating which goes first, on identical fresh vaults:',
      '',
      '| scenario | with the row triggers, median ms (min–max) | without, median ms (min–max) | with / without |',
      '|---|---:|---:|---:|',
      `| ${t.title} | ${ms(t.withTriggers.median)} (${spread(t.withTriggers)}) | ${ms(t.withoutTriggers.median)} (${spread(t.withoutTriggers)}) | **${t.ratio.toFixed(2)}x** |`,
      '',
    );
  }

  const typical = r.scenarios.find((s) => s.id === 'push-mixed-100');
  if (typical) {
    lines.push('## The statements of one push (typical sync)', '', '| # | SyncService | baseline |', '|---:|---|---|');
    const n = Math.max(typical.service.statements.length, typical.baseline.statements.length);
    for (let i = 0; i < n; i++) {
      lines.push(`| ${i + 1} | \`${typical.service.statements[i] ?? ''}\` | \`${typical.baseline.statements[i] ?? ''}\` |`);
    }
    lines.push('');
  }

  lines.push('## Correctness', '');
  lines.push(
    r.mismatches.length === 0
      ? '- The service and the baseline returned identical results (applied versions, conflicts, cursors, pulled pages) and left identical rows, in every scenario and in the judge walk.'
      : `- **${r.mismatches.length} difference(s) between the service and the baseline:**`,
  );
  lines.push(...r.mismatches.slice(0, 50).map((d) => `  - ${d}`));
  if (r.notes.length > 0) lines.push('', 'Notes (not counted as differences):', ...r.notes.map((n) => `- ${n}`));
  lines.push('', `Bench process peak RSS: ${r.processMaxRssMb.toFixed(0)} MiB.`, '');
  return lines.join('\n');
}

/** The JSON document: every timing, not only the medians. */
export function renderJson(r: BenchResults): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}
