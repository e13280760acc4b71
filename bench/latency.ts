/**
 * The network scenario of issue 10: a typical sync (push 10 changes, then pull to the head) with
 * both implementations connected through an in-process TCP proxy that holds every chunk for a
 * fixed delay each way: 1 ms (a database in the same region) and 5 ms (across regions). Round
 * trips dominate here, so this is the latency users feel.
 *
 * Each delay gets a proxy, an ORM and a baseline pool of its own (connected through it); the
 * repetitions run through the usual side-by-side harness, alternating which implementation goes
 * first, and their results and final rows are compared like every other scenario's.
 *
 * @module
 */
import type { OrmOverrides } from './orm-overrides.js';
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql';
import { createConfig } from '../src/config.js';
import { encodeCursor } from '../src/sync/cursor.js';
import { SyncService } from '../src/sync/sync-service.js';
import type { PullResult, PushResult } from '../src/sync/types.js';
import { TcpProxy } from '../soak/tcp-proxy.js';
import { BaselineSync, createBaselinePool, type SyncImplementation } from './baseline.js';
import { normalizePull, normalizePush } from './compare.js';
import { scenario, type BenchContext, type ImplName, type ScenarioResult, type Trial } from './harness.js';
import { analyze, benchUser, dropVaults, seedVault, vaultFingerprint, type SeededVault } from './seed.js';
import { liveVault, makeChanges, typicalMix } from './workload.js';
import type { Change } from '../src/sync/types.js';

interface SyncPrepared {
  vault: SeededVault;
  /** Where the device's cursor stands: `latencyWaiting` changes of other devices after it. */
  cursorSeq: number;
  changes: Change[];
}

interface SyncOutcome {
  push: PushResult;
  pulls: PullResult[];
}

let seedCounter = 900_000;

/** Push, then pull from the push's cursor until nothing more is waiting, as a device syncs. */
async function typicalSync(impl: SyncImplementation, p: SyncPrepared): Promise<SyncOutcome> {
  const push = await impl.push(p.vault.userId, { changes: p.changes, cursor: encodeCursor(p.vault.vaultId, p.cursorSeq) });
  const pulls: PullResult[] = [];
  let cursor = push.cursor;
  for (;;) {
    const page = await impl.pull(p.vault.userId, { cursor });
    pulls.push(page);
    cursor = page.cursor;
    if (!page.hasMore) return { push, pulls };
  }
}

function syncTrial(ctx: BenchContext, label: string): Trial<SyncPrepared, SyncOutcome> {
  const { latencyVaultSize, latencyWaiting, ciphertextBytes } = ctx.plan;
  return {
    calls: 1,
    async prepare() {
      const { seed, model } = liveVault(latencyVaultSize, ciphertextBytes, seedCounter++);
      const changes = makeChanges(model, typicalMix(10), ciphertextBytes);
      const cursorSeq = seed.lastSeq - latencyWaiting;
      const prepared = {} as Record<ImplName, SyncPrepared>;
      for (const name of ['service', 'baseline'] as const) {
        prepared[name] = { vault: await seedVault(ctx.seedPool, benchUser(`${label}-${name}`), seed), cursorSeq, changes };
      }
      await analyze(ctx.seedPool);
      return prepared;
    },
    run: typicalSync,
    async check(results, prepared) {
      const s = results.service;
      const b = results.baseline;
      ctx.findings.same(`${label} push`, normalizePush(s.push, prepared.service.vault.vaultId), normalizePush(b.push, prepared.baseline.vault.vaultId));
      ctx.findings.same(
        `${label} pulls`,
        s.pulls.map((r) => normalizePull(r, prepared.service.vault.vaultId)),
        b.pulls.map((r) => normalizePull(r, prepared.baseline.vault.vaultId)),
      );
      ctx.findings.same(`${label} final rows`, await vaultFingerprint(ctx.seedPool, prepared.service.vault.vaultId), await vaultFingerprint(ctx.seedPool, prepared.baseline.vault.vaultId));
    },
    cleanup: (prepared) => dropVaults(ctx.seedPool, [prepared.service.vault, prepared.baseline.vault]),
  };
}

/** One scenario per delay of `latencyDelaysMs`; `url` is the bench database (without the proxy). */
export async function latencyScenarios(ctx: BenchContext, url: string, ormOverrides: OrmOverrides = {}): Promise<ScenarioResult[]> {
  const out: ScenarioResult[] = [];
  for (const delayMs of ctx.plan.latencyDelaysMs) {
    const proxy = await TcpProxy.start(url, { delayMs });
    const config = createConfig(proxy.url, ormOverrides);
    const orm = await MikroORM.init(config);
    const pool = createBaselinePool(proxy.url, config.pool?.max ?? 10);
    try {
      const baseline = new BaselineSync(pool);
      const linked: BenchContext = { ...ctx, impls: { service: new SyncService(orm.em as EntityManager), baseline }, baseline };
      const label = `latency-${delayMs}`;
      // Untimed: opens the connections through the proxy (and warms the new ORM) before timing.
      for (let i = 0; i < 2; i++) {
        const trial = syncTrial(linked, `${label}-warm`);
        const prepared = await trial.prepare(i);
        await typicalSync(linked.impls.service, prepared.service);
        await typicalSync(linked.impls.baseline, prepared.baseline);
        await trial.cleanup(prepared);
      }
      const title = `typical sync over a link of ${delayMs} ms each way: push 10 changes, then pull to the head (${ctx.plan.latencyWaiting} changes of other devices waiting), vault of ${ctx.plan.latencyVaultSize.toLocaleString('en-US')}`;
      out.push(await scenario(linked, { id: label, title, rowsPerRun: 10, reps: ctx.plan.latencyReps }, syncTrial(linked, label)));
    } finally {
      await orm.close(true);
      await pool.end();
      await proxy.close();
    }
  }
  return out;
}
