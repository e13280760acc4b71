/**
 * What the raw-writer row triggers cost the service (issue #9.2): `records_place_raw_insert` and
 * `records_place_raw_update` give raw SQL writers feed positions, and their WHEN clauses
 * (`new.seq is null`; `seq` unchanged while the content changed) are meant to keep them from ever
 * firing on the service's own writes, which always set `seq`. This scenario times the same push of
 * 1,000 mixed changes with the two triggers enabled and disabled, alternating which goes first, on
 * identical fresh vaults; the statement-level counter triggers stay on in both. (That they never
 * fire on the service's path is proven without timing in test/sync/raw-writers.test.ts.)
 *
 * @module
 */
import type pg from 'pg';
import { encodeCursor } from '../src/sync/cursor.js';
import type { BenchContext } from './harness.js';
import { measure, stats, type Stats } from './measure.js';
import { analyze, benchUser, dropVaults, seedVault, vaultFingerprint } from './seed.js';
import { liveVault, makeChanges, typicalMix } from './workload.js';

/** The timings with and without the row triggers. */
export interface RowTriggerCost {
  title: string;
  withTriggers: Stats;
  withoutTriggers: Stats;
  /** Median with over median without. */
  ratio: number;
}

const TRIGGERS = ['records_place_raw_insert', 'records_place_raw_update'];

async function setTriggers(pool: pg.Pool, enabled: boolean): Promise<void> {
  await pool.query(`alter table records ${TRIGGERS.map((t) => `${enabled ? 'enable' : 'disable'} trigger ${t}`).join(', ')}`);
}

/** Times the service's push with and without the raw-writer row triggers; see the module comment. */
export async function rowTriggerCost(ctx: BenchContext, seedBase: number): Promise<RowTriggerCost> {
  const { vaultSize, ciphertextBytes } = ctx.plan;
  // More repetitions than the other push scenarios: the difference looked for is small.
  const reps = Math.max(7, 2 * ctx.plan.pushReps);
  const service = ctx.impls.service;
  const timings: Record<'on' | 'off', number[]> = { on: [], off: [] };
  const title = `push 1,000 mixed changes into ${vaultSize.toLocaleString('en-US')} records, with vs without the raw-writer row triggers`;
  try {
    // Two untimed rounds of each first (warm-up), then the timed ones.
    for (let rep = -2; rep < reps; rep++) {
      const order: ('on' | 'off')[] = Math.abs(rep) % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
      const { seed, model } = liveVault(vaultSize, ciphertextBytes, seedBase + rep + 2);
      const changes = makeChanges(model, typicalMix(1000), ciphertextBytes);
      const vaults = { on: await seedVault(ctx.seedPool, benchUser('triggers-on'), seed), off: await seedVault(ctx.seedPool, benchUser('triggers-off'), seed) };
      await analyze(ctx.seedPool);
      try {
        for (const which of order) {
          await setTriggers(ctx.seedPool, which === 'on');
          const vault = vaults[which];
          const run = await measure(() => service.push(vault.userId, { changes, cursor: encodeCursor(vault.vaultId, seed.lastSeq) }));
          if (rep >= 0) timings[which].push(run.ms);
        }
        // Same rows either way: the triggers never fired on the service's writes.
        ctx.findings.same(`row triggers rep ${rep}`, await vaultFingerprint(ctx.seedPool, vaults.on.vaultId), await vaultFingerprint(ctx.seedPool, vaults.off.vaultId));
      } finally {
        await setTriggers(ctx.seedPool, true);
        await dropVaults(ctx.seedPool, [vaults.on, vaults.off]);
      }
    }
  } finally {
    await setTriggers(ctx.seedPool, true);
  }
  const withTriggers = stats(timings.on);
  const withoutTriggers = stats(timings.off);
  return { title, withTriggers, withoutTriggers, ratio: withTriggers.median / withoutTriggers.median };
}
