/**
 * Times the service's pushes in a process of its own, for the per-lever figures of issue 10:
 * `bench/levers.ts` runs it as `node --expose-gc --import tsx <variant>/bench/lever-child.ts` from a copy of
 * the checkout with one lever turned off (or from the checkout itself), with `BENCH_DATABASE_URL`
 * (migrated), `BENCH_VAULT`, `BENCH_REPS` and `BENCH_ORM` (see `orm-overrides.ts`). Prints one
 * JSON line: {@link LeverSample}.
 *
 * Each push goes into a freshly seeded vault (seeding untimed). Three untimed rounds of every kind
 * warm the JIT first, and a full collection (`--expose-gc`) before each timed push keeps the
 * seeding's garbage out of it: the figures compare variants, so what they share is taken out.
 * The statements of the last push of each kind are counted at the driver.
 *
 * @module
 */
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql';
import pg from 'pg';
import { createConfig } from '../src/config.js';
import { pgConnectionConfig } from '../src/connection-options.js';
import { encodeCursor } from '../src/sync/cursor.js';
import { SyncService } from '../src/sync/sync-service.js';
import { parseOrmOverrides } from './orm-overrides.js';
import { QueryCounter } from './query-counter.js';
import { analyze, benchUser, dropVaults, seedVault } from './seed.js';
import { liveVault, makeChanges, typicalMix, type ChangeMix } from './workload.js';

/** The pushes every variant is timed on: the targets that the unit of work decides. */
export const LEVER_PUSHES: readonly { name: string; mix: ChangeMix }[] = [
  { name: '1,000 creates', mix: { creates: 1000, updates: 0, deletes: 0 } },
  { name: '1,000 updates', mix: { creates: 0, updates: 1000, deletes: 0 } },
  { name: '100 mixed', mix: typicalMix(100) },
];

/** What the child reports, per push kind (in {@link LEVER_PUSHES}' order). */
export interface LeverSample {
  pushes: { name: string; ms: number[]; statements: number }[];
}

const WARM_UP_ROUNDS = 3;
const BYTES = 256;

async function main(): Promise<void> {
  const url = process.env.BENCH_DATABASE_URL as string;
  const vaultSize = Number(process.env.BENCH_VAULT);
  const reps = Number(process.env.BENCH_REPS);
  const counter = new QueryCounter().install();
  const seedPool = new pg.Pool({ ...pgConnectionConfig(url), max: 2 });
  const orm = await MikroORM.init(createConfig(url, parseOrmOverrides(process.env.BENCH_ORM)));
  const service = new SyncService(orm.em as EntityManager);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  /** One push of `mix` into a fresh vault: its time and statements. */
  const pushOnce = async (mix: ChangeMix, seedNumber: number) => {
    const { seed, model } = liveVault(vaultSize, BYTES, seedNumber);
    const vault = await seedVault(seedPool, benchUser('lever'), seed);
    await analyze(seedPool);
    const changes = makeChanges(model, mix, BYTES);
    gc();
    counter.start();
    const start = performance.now();
    await service.push(vault.userId, { changes, cursor: encodeCursor(vault.vaultId, seed.lastSeq) });
    const ms = performance.now() - start;
    const { count } = counter.stop();
    await dropVaults(seedPool, [vault]);
    return { ms, statements: count };
  };
  try {
    for (let round = 0; round < WARM_UP_ROUNDS; round++) for (const { mix } of LEVER_PUSHES) await pushOnce(mix, round + 1);
    const sample: LeverSample = { pushes: LEVER_PUSHES.map(({ name }) => ({ name, ms: [], statements: 0 })) };
    // The kinds interleaved, so a slow stretch of the machine falls on all of them.
    for (let rep = 0; rep < reps; rep++) {
      for (const [kind, { mix }] of LEVER_PUSHES.entries()) {
        const { ms, statements } = await pushOnce(mix, 1000 * (kind + 1) + rep);
        const figures = sample.pushes[kind] as LeverSample['pushes'][number];
        figures.ms.push(ms);
        figures.statements = statements;
      }
    }
    console.log(JSON.stringify(sample));
  } finally {
    await orm.close(true);
    await seedPool.end();
  }
}

await main();
