/**
 * Times the service's pushes in a process of its own, for the per-lever figures of issue 10:
 * `bench/levers.ts` runs it as `node --import tsx <variant>/bench/lever-child.ts` from a copy of
 * the checkout with one lever turned off (or from the checkout itself), with `BENCH_DATABASE_URL`
 * (migrated), `BENCH_VAULT`, `BENCH_REPS` and `BENCH_ORM` (see `orm-overrides.ts`). Prints one
 * JSON line: {@link LeverSample}.
 *
 * Each push goes into a freshly seeded vault (seeding untimed), after two untimed pushes of each
 * kind, and the statements of the last push of each kind are counted at the driver.
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

const WARM_UPS = 2;
const BYTES = 256;

async function main(): Promise<void> {
  const url = process.env.BENCH_DATABASE_URL as string;
  const vaultSize = Number(process.env.BENCH_VAULT);
  const reps = Number(process.env.BENCH_REPS);
  const counter = new QueryCounter().install();
  const seedPool = new pg.Pool({ ...pgConnectionConfig(url), max: 2 });
  const orm = await MikroORM.init(createConfig(url, parseOrmOverrides(process.env.BENCH_ORM)));
  const service = new SyncService(orm.em as EntityManager);
  try {
    const sample: LeverSample = { pushes: [] };
    for (const [kind, { name, mix }] of LEVER_PUSHES.entries()) {
      const ms: number[] = [];
      let statements = 0;
      for (let rep = 0; rep < WARM_UPS + reps; rep++) {
        const { seed, model } = liveVault(vaultSize, BYTES, 1000 * kind + rep + 1);
        const vault = await seedVault(seedPool, benchUser('lever'), seed);
        await analyze(seedPool);
        const changes = makeChanges(model, mix, BYTES);
        counter.start();
        const start = performance.now();
        await service.push(vault.userId, { changes, cursor: encodeCursor(vault.vaultId, seed.lastSeq) });
        const elapsed = performance.now() - start;
        statements = counter.stop().count;
        if (rep >= WARM_UPS) ms.push(elapsed);
        await dropVaults(seedPool, [vault]);
      }
      sample.pushes.push({ name, ms, statements });
    }
    console.log(JSON.stringify(sample));
  } finally {
    await orm.close(true);
    await seedPool.end();
  }
}

await main();
