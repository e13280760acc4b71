/**
 * `npm run bench [-- --quick] [-- --only=push,pull,...] [-- --out=DIR]`: the benchmark of issue 5.
 *
 * Measures `SyncService` against a hand-written `pg` baseline with the same semantics
 * (`bench/baseline.ts`), side by side in one process, on `DATABASE_URL` or else the embedded
 * PostgreSQL, in a scratch database it creates, migrates and drops. Prints a markdown report and
 * writes it, the figures as JSON and the push-vs-batch-size chart to `bench/` (or `--out`).
 *
 * Exit code: 0 whatever the targets say (the report says PASS or MISS); 1 when the service and
 * the baseline disagree on any result (a correctness failure); 2 when the run itself fails.
 *
 * `--orm=flushMode:commit,populateAfterFlush:false` tries global ORM settings (see `orm-overrides.ts`).
 *
 * Groups for `--only`: judge, push, sweep, import, parallel, pull, latency, memory, triggers, cold, levers.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { adminQuery, withDatabase } from '../scripts/database-admin.js';
import { createConfig } from '../src/config.js';
import { checkDatabaseReachable } from '../src/database-url.js';
import { resolveDatabaseUrlOrEmbedded as resolveDatabaseUrl } from '../src/embedded.js';
import { startEmbeddedPostgres } from '../src/embedded-postgres.js';
import { runMigrations } from '../src/migrate.js';
import { SyncService } from '../src/sync/sync-service.js';
import { BaselineSync, createBaselinePool } from './baseline.js';
import { writeChart } from './chart.js';
import { coldStart, type ColdStartResult } from './cold-start.js';
import { Findings } from './compare.js';
import { checkCorrectness } from './correctness.js';
import type { BenchContext, ScenarioResult } from './harness.js';
import { machineInfo } from './machine.js';
import { DEFAULT_PLAN, QUICK_PLAN } from './plan.js';
import { latencyScenarios } from './latency.js';
import { leverScenario, type LeverResult } from './levers.js';
import { parseOrmOverrides } from './orm-overrides.js';
import { memoryScenario, type MemoryResult } from './memory.js';
import { fullPullScenario, incrementalPullScenarios } from './pull-scenarios.js';
import { batchSweep, importScenario, parallelScenario, singlePushScenarios, warmUp } from './push-scenarios.js';
import { QueryCounter } from './query-counter.js';
import { rowTriggerCost, type RowTriggerCost } from './row-triggers.js';
import { renderJson, renderMarkdown, type BenchResults } from './report.js';
import { judgeTargets } from './targets.js';

const GROUPS = ['judge', 'push', 'sweep', 'import', 'parallel', 'pull', 'latency', 'memory', 'triggers', 'cold', 'levers'] as const;
type Group = (typeof GROUPS)[number];

function option(name: string): string | undefined {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

async function main(): Promise<number> {
  const started = performance.now();
  const plan = process.argv.includes('--quick') ? QUICK_PLAN : DEFAULT_PLAN;
  const only = option('only')?.split(',') as Group[] | undefined;
  const unknown = only?.filter((g) => !GROUPS.includes(g));
  if (unknown?.length) throw new Error(`unknown --only group(s): ${unknown.join(', ')}; groups are ${GROUPS.join(', ')}`);
  const wants = (group: Group) => !only || only.includes(group);
  const ormOverrides = parseOrmOverrides(option('orm'));
  // Child processes (memory) build their ORM from the same settings.
  process.env.BENCH_ORM = option('orm') ?? '';
  const outDir = path.resolve(option('out') ?? fileURLToPath(new URL('.', import.meta.url)));
  const log = (line: string) => console.error(line);

  const target = await resolveDatabaseUrl();
  const postgres = await checkDatabaseReachable(target);
  const machine = await machineInfo(postgres, target.source);
  log(`vault-db bench (${plan.mode}): PostgreSQL ${postgres} via ${target.source}`);

  const scratch = `vault_db_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery(target.url, `create database "${scratch}"`);
  const url = withDatabase(target.url, scratch);
  const counter = new QueryCounter().install();
  let orm: MikroORM | undefined;
  const pools: pg.Pool[] = [];
  try {
    await runMigrations({ url, log: () => {} });
    const config = createConfig(url, ormOverrides);
    orm = await MikroORM.init(config);
    // The baseline gets as many connections as the service's pool, so the parallel scenario is fair.
    const baselinePool = createBaselinePool(url, config.pool?.max ?? 10);
    const seedPool = new pg.Pool({ ...pgConnectionConfig(url), max: 4 });
    seedPool.on('error', () => {});
    pools.push(baselinePool, seedPool);
    const baseline = new BaselineSync(baselinePool);
    const findings = new Findings();
    const ctx: BenchContext = {
      plan,
      seedPool,
      impls: { service: new SyncService(orm.em as EntityManager), baseline },
      baseline,
      counter,
      findings,
      log,
      poolProbes: {
        service: () => {
          // knex's tarn pool, under MikroORM's connection.
          const pool = (orm?.em.getConnection() as unknown as { getKnex(): { client: { pool: { numUsed(): number; numPendingAcquires(): number; max: number } } } }).getKnex().client.pool;
          return { used: pool.numUsed(), waiting: pool.numPendingAcquires(), size: pool.max };
        },
        baseline: () => ({ used: baselinePool.totalCount - baselinePool.idleCount, waiting: baselinePool.waitingCount, size: config.pool?.max ?? 10 }),
      },
    };

    const scenarios: ScenarioResult[] = [];
    let sweep: ScenarioResult[] = [];
    let cold: ColdStartResult[] = [];
    let rowTriggers: RowTriggerCost | undefined;
    let latency: ScenarioResult[] = [];
    let memory: MemoryResult | undefined;
    let levers: LeverResult | undefined;
    const phases: Record<string, number> = {};
    const phase = async (wanted: boolean, title: string, work: () => Promise<void>) => {
      if (!wanted) return;
      log(title);
      const start = performance.now();
      await work();
      phases[title] = (performance.now() - start) / 1000;
      log(`  (${phases[title].toFixed(1)} s)`);
    };
    const measuresCalls = (['push', 'import', 'pull', 'parallel', 'sweep', 'latency', 'triggers'] as const).some(wants);
    // The judge walk goes first: it also opens the connections and runs every statement once.
    await phase(wants('judge'), 'judge walk (correctness)', () => checkCorrectness(ctx));
    await phase(measuresCalls, 'warm-up', () => warmUp(ctx));
    await phase(wants('push'), 'single pushes', async () => void scenarios.push(...(await singlePushScenarios(ctx))));
    await phase(wants('import'), 'first import', async () => void scenarios.push(await importScenario(ctx)));
    await phase(wants('pull'), 'pulls', async () => void scenarios.push(await fullPullScenario(ctx), ...(await incrementalPullScenarios(ctx))));
    await phase(wants('parallel'), 'parallel users', async () => {
      for (const users of plan.parallelUserCounts) scenarios.push(await parallelScenario(ctx, users));
    });
    await phase(wants('latency'), 'typical sync over a network link', async () => void (latency = await latencyScenarios(ctx, url, ormOverrides)));
    await phase(wants('memory'), 'memory of a process serving pushes', async () => void (memory = await memoryScenario(url, plan.memoryPushes, plan.memoryWarmUp)));
    await phase(wants('sweep'), 'push time against batch size', async () => void (sweep = await batchSweep(ctx)));
    await phase(wants('triggers'), 'raw-writer row triggers: with vs without', async () => void (rowTriggers = await rowTriggerCost(ctx, 900_000)));
    await phase(wants('levers'), 'each unit-of-work lever on its own', async () => void (levers = await leverScenario(target.url, plan.leverRounds, plan.leverReps, plan.leverVaultSize, log)));
    await phase(wants('cold'), 'cold start', async () => void (cold = await coldStart(url, plan.coldStartReps, log)));

    const results: BenchResults = {
      machine,
      plan,
      scenarios,
      sweep,
      coldStart: cold,
      rowTriggers,
      latency,
      memory,
      levers,
      targets: judgeTargets(scenarios, sweep, cold, latency, memory),
      mismatches: findings.mismatches,
      notes: [...findings.notes],
      durationS: (performance.now() - started) / 1000,
      phasesS: phases,
      processMaxRssMb: process.resourceUsage().maxRSS / 1024,
    };
    const markdown = renderMarkdown(results);
    await mkdir(outDir, { recursive: true });
    await writeFile(path.join(outDir, 'results.md'), markdown);
    await writeFile(path.join(outDir, 'results.json'), renderJson(results));
    if (sweep.length > 0) {
      const where = `${machine.cpus}, PostgreSQL ${postgres} (${target.source}), ${plan.mode} mode, vault of ${plan.vaultSize.toLocaleString('en-US')} records`;
      await writeChart(path.join(outDir, 'push-vs-batch.svg'), sweep, where);
    }
    console.log(markdown);
    if (findings.mismatches.length > 0) {
      log(`FAILED: ${findings.mismatches.length} difference(s) between the service and the baseline (see Correctness).`);
      return 1;
    }
    return 0;
  } finally {
    await orm?.close(true);
    await Promise.all(pools.map((p) => p.end()));
    await adminQuery(target.url, `drop database if exists "${scratch}" with (force)`);
    if (target.source === 'embedded') await (await startEmbeddedPostgres()).stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(2);
  },
);
