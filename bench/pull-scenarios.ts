/**
 * The pull scenarios of issue 5: a new device's full pull, and an incremental pull of the same
 * number of changes from a small and from a large vault (does the cost grow with the vault?).
 * Pulls only read, so one seeded vault serves every repetition of both implementations.
 *
 * @module
 */
import { encodeCursor } from '../src/sync/cursor.js';
import type { PullResult } from '../src/sync/types.js';
import type { SyncImplementation } from './baseline.js';
import { checkTimestamps, normalizePull } from './compare.js';
import { interleaved, scenario, type BenchContext, type ImplName, type ScenarioResult, type SideBySide, type Trial } from './harness.js';
import { analyze, benchUser, dropVaults, seedVault, type SeededVault } from './seed.js';
import { liveVault, vaultWithRecentEdits } from './workload.js';

/** Where a pull run starts. */
interface PullStart {
  vault: SeededVault;
  /** Null for a full sync. */
  cursor: string | null;
  limit: number;
}

/** Pulls page after page until `hasMore` is false, as a device catching up does. */
async function pullAll(impl: SyncImplementation, start: PullStart): Promise<PullResult[]> {
  const pages: PullResult[] = [];
  let cursor = start.cursor;
  for (;;) {
    const page = await impl.pull(start.vault.userId, { cursor, limit: start.limit });
    pages.push(page);
    cursor = page.cursor;
    if (!page.hasMore) return pages;
  }
}

/** A trial that pulls from one shared vault with both implementations. */
function pullTrial(ctx: BenchContext, label: string, start: PullStart, pages: number): Trial<PullStart, PullResult[]> {
  return {
    calls: pages,
    prepare: async () => ({ service: start, baseline: start }) satisfies Record<ImplName, PullStart>,
    run: pullAll,
    async check(results) {
      results.service.forEach((page) => checkTimestamps(ctx.findings, 'SyncService', 'pull', page.changes));
      ctx.findings.same(
        `${label} pages`,
        results.service.map((p) => normalizePull(p, start.vault.vaultId)),
        results.baseline.map((p) => normalizePull(p, start.vault.vaultId)),
      );
      const rows = results.service.reduce((n, p) => n + p.changes.length, 0);
      if (results.service.length !== pages) ctx.findings.mismatches.push(`${label}: expected ${pages} pages, the service returned ${results.service.length} (${rows} rows)`);
    },
    cleanup: async () => {},
  };
}

const size = (n: number) => n.toLocaleString('en-US');

/** A new device pulls all `fullPullRecords` records, `fullPullLimit` per page. */
export async function fullPullScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const { fullPullRecords, fullPullLimit, fullPullReps, ciphertextBytes } = ctx.plan;
  const vault = await seedVault(ctx.seedPool, benchUser('full-pull'), liveVault(fullPullRecords, ciphertextBytes, 7).seed);
  await analyze(ctx.seedPool);
  try {
    const pages = Math.ceil(fullPullRecords / fullPullLimit);
    const title = `full pull of ${size(fullPullRecords)} records (${pages} pages of ${size(fullPullLimit)})`;
    return await scenario(ctx, { id: 'pull-full', title, rowsPerRun: fullPullRecords, reps: fullPullReps }, pullTrial(ctx, 'pull-full', { vault, cursor: null, limit: fullPullLimit }, pages));
  } finally {
    await dropVaults(ctx.seedPool, [vault]);
  }
}

/** One pull of the newest `incrementalChanges` changes, from a small and from a large vault. */
export async function incrementalPullScenarios(ctx: BenchContext): Promise<ScenarioResult[]> {
  const { incrementalSmall, incrementalLarge, incrementalChanges, incrementalReps, ciphertextBytes } = ctx.plan;
  // Both vaults exist while either is measured, so both pulls run against the same table and
  // indexes, and only the vault's own size differs.
  const vaults: { id: string; records: number; vault: SeededVault; cursorSeq: number }[] = [];
  try {
    for (const [id, records] of [
      ['pull-incremental-small', incrementalSmall],
      ['pull-incremental-large', incrementalLarge],
    ] as const) {
      const { seed, cursorSeq } = vaultWithRecentEdits(records, incrementalChanges, ciphertextBytes, records);
      vaults.push({ id, records, vault: await seedVault(ctx.seedPool, benchUser(id), seed), cursorSeq });
    }
    await analyze(ctx.seedPool);
    const cases = vaults.map(({ id, records, vault, cursorSeq }) => ({
      id,
      title: `incremental pull of ${incrementalChanges} changes from ${size(records)} records`,
      trial: pullTrial(ctx, id, { vault, cursor: encodeCursor(vault.vaultId, cursorSeq), limit: ctx.plan.fullPullLimit }, 1),
    }));
    // Interleaved: the target compares the two vaults, so they must see the same machine load.
    const figures = await interleaved(ctx, incrementalReps, cases.map((c) => ({ label: c.title, trial: c.trial as Trial<unknown, unknown> })));
    const out: ScenarioResult[] = cases.map((c, i) => ({
      id: c.id,
      title: c.title,
      rowsPerRun: incrementalChanges,
      callsPerRun: 1,
      throughputUnit: 'rows/s',
      ...(figures[i] as SideBySide),
    }));
    return out;
  } finally {
    await dropVaults(ctx.seedPool, vaults.map((v) => v.vault));
  }
}
