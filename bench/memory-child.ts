/**
 * A process that serves pushes and nothing else, for the memory figures of issue 10: run by
 * `bench/memory.ts` as `node --expose-gc --import tsx bench/memory-child.ts <service|baseline>`
 * with `BENCH_DATABASE_URL`, `BENCH_PUSHES`, `BENCH_WARM_UP` and `BENCH_ORM` (see `orm-overrides.ts`). Prints one JSON line.
 *
 * It seeds vaults of its own, warms up with `BENCH_WARM_UP` pushes, then serves `BENCH_PUSHES`
 * pushes of 10 typical changes (4 users at a time, like a small server), measuring the heap after
 * a full collection at every tenth of the run: a fork or identity map kept alive per push would
 * show as a heap that climbs from checkpoint to checkpoint.
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
import { BaselineSync, createBaselinePool, type SyncImplementation } from './baseline.js';
import { benchUser, seedVault } from './seed.js';
import { liveVault, makeChanges, typicalMix, type VaultModel } from './workload.js';

/** What the child reports. */
export interface MemorySample {
  impl: 'service' | 'baseline';
  pushes: number;
  /** Peak RSS of the whole process, MiB. */
  peakRssMb: number;
  /** Heap used after a full GC at each checkpoint (after the warm-up, then every tenth), MiB. */
  heapMb: number[];
  /** Wall time of the measured pushes, ms. */
  ms: number;
}

const USERS = 4;
const VAULT = 200;
const BYTES = 256;

async function main(): Promise<void> {
  const impl = process.argv[2] === 'baseline' ? 'baseline' : 'service';
  const url = process.env.BENCH_DATABASE_URL as string;
  const pushes = Number(process.env.BENCH_PUSHES);
  const warmUp = Number(process.env.BENCH_WARM_UP);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const seedPool = new pg.Pool({ ...pgConnectionConfig(url), max: 1 });
  const orm = impl === 'service' ? await MikroORM.init(createConfig(url, parseOrmOverrides(process.env.BENCH_ORM))) : undefined;
  const pool = impl === 'baseline' ? createBaselinePool(url, 10) : undefined;
  const sync: SyncImplementation = orm ? new SyncService(orm.em as EntityManager) : new BaselineSync(pool as pg.Pool);
  try {
    const users: { userId: string; model: VaultModel; cursor: string }[] = [];
    for (let u = 0; u < USERS; u++) {
      const { seed, model } = liveVault(VAULT, BYTES, 700_000 + u);
      const vault = await seedVault(seedPool, benchUser(`memory-${impl}`), seed);
      users.push({ userId: vault.userId, model, cursor: encodeCursor(vault.vaultId, seed.lastSeq) });
    }
    const pushOne = async (u: number) => {
      const user = users[u] as (typeof users)[number];
      const result = await sync.push(user.userId, { changes: makeChanges(user.model, typicalMix(10), BYTES), cursor: user.cursor });
      user.cursor = result.cursor;
    };
    // Each user's pushes in order (the cursor chain), the users at once.
    const serve = (count: number) => Promise.all(users.map(async (_, u) => { for (let i = u; i < count; i += USERS) await pushOne(u); }));
    await serve(warmUp);
    const heap = () => {
      gc();
      return process.memoryUsage().heapUsed / 2 ** 20;
    };
    const heapMb = [heap()];
    const start = performance.now();
    const tenth = Math.ceil(pushes / 10);
    for (let done = 0; done < pushes; done += tenth) {
      await serve(Math.min(tenth, pushes - done));
      heapMb.push(heap());
    }
    const sample: MemorySample = { impl, pushes, peakRssMb: process.resourceUsage().maxRSS / 1024, heapMb, ms: performance.now() - start };
    console.log(JSON.stringify(sample));
  } finally {
    await orm?.close(true);
    await pool?.end();
    await seedPool.query("delete from vaults where user_id like 'bench-memory-%'");
    await seedPool.end();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
