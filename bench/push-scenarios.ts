/**
 * The push scenarios of issue 5: a typical 100-change sync, 1,000 creates, 1,000 updates, a first
 * import in pushes of 1,000, 16 users pushing at once, and push time against batch size.
 *
 * @module
 */
import os from 'node:os';
import { encodeCursor } from '../src/sync/cursor.js';
import type { Change, PushResult } from '../src/sync/types.js';
import type { SyncImplementation } from './baseline.js';
import { checkTimestamps, normalizePush } from './compare.js';
import { scenario, type BenchContext, type ImplName, type ScenarioResult, type Trial } from './harness.js';
import { analyze, benchUser, dropVaults, seedVault, vaultFingerprint, type SeededVault } from './seed.js';
import { liveVault, makeChanges, typicalMix, VaultModel, prng, type ChangeMix, type VaultSeed } from './workload.js';

/** What one user does in a repetition: the vault it starts from, and the pushes it sends in order. */
interface PushWorkload {
  seed: VaultSeed;
  pushes: Change[][];
}

/** A seeded vault with the pushes to send to it. */
interface PreparedUser {
  vault: SeededVault;
  lastSeq: number;
  pushes: Change[][];
}

let seedCounter = 1;

/** Sends a user's pushes one after the other, passing each result's cursor to the next push, as a device does. */
async function pushAll(impl: SyncImplementation, user: PreparedUser): Promise<PushResult[]> {
  let cursor = encodeCursor(user.vault.vaultId, user.lastSeq);
  const results: PushResult[] = [];
  for (const changes of user.pushes) {
    const result = await impl.push(user.vault.userId, { changes, cursor });
    results.push(result);
    cursor = result.cursor;
  }
  return results;
}

/**
 * A trial in which `users` users each send their pushes (users concurrently, each user's pushes in
 * order), into vaults seeded identically for the service and the baseline.
 */
function pushTrial(ctx: BenchContext, label: string, users: number, make: () => PushWorkload): Trial<PreparedUser[], PushResult[][]> {
  let calls = 0;
  const trial: Trial<PreparedUser[], PushResult[][]> = {
    get calls() {
      return calls;
    },
    async prepare() {
      const workloads = Array.from({ length: users }, make);
      calls = workloads.reduce((n, w) => n + w.pushes.length, 0);
      const prepared: Record<ImplName, PreparedUser[]> = { service: [], baseline: [] };
      for (const workload of workloads) {
        for (const name of ['service', 'baseline'] as const) {
          const vault = await seedVault(ctx.seedPool, benchUser(`${label}-${name}`), workload.seed);
          prepared[name].push({ vault, lastSeq: workload.seed.lastSeq, pushes: workload.pushes });
        }
      }
      await analyze(ctx.seedPool);
      return prepared;
    },
    run: (impl, prepared) => Promise.all(prepared.map((user) => pushAll(impl, user))),
    async check(results, prepared) {
      for (let u = 0; u < prepared.service.length; u++) {
        const svc = prepared.service[u] as PreparedUser;
        const base = prepared.baseline[u] as PreparedUser;
        const svcResults = results.service[u] as PushResult[];
        const baseResults = results.baseline[u] as PushResult[];
        svcResults.forEach((r, i) => {
          checkTimestamps(ctx.findings, 'SyncService', 'push conflicts', r.conflicts.map((c) => c.server));
          ctx.findings.same(`${label} user ${u} push ${i}`, normalizePush(r, svc.vault.vaultId), normalizePush(baseResults[i] as PushResult, base.vault.vaultId));
        });
        ctx.findings.same(`${label} user ${u} final rows`, await vaultFingerprint(ctx.seedPool, svc.vault.vaultId), await vaultFingerprint(ctx.seedPool, base.vault.vaultId));
      }
    },
    cleanup: (prepared) => dropVaults(ctx.seedPool, [...prepared.service, ...prepared.baseline].map((p) => p.vault)),
  };
  return trial;
}

/** One push of `mix` into a vault of `vaultSize` live records. */
function onePush(ctx: BenchContext, vaultSize: number, mix: ChangeMix): () => PushWorkload {
  return () => {
    const { seed, model } = liveVault(vaultSize, ctx.plan.ciphertextBytes, seedCounter++);
    return { seed, pushes: [makeChanges(model, mix, ctx.plan.ciphertextBytes)] };
  };
}

const size = (n: number) => n.toLocaleString('en-US');

/** The single-push scenarios: the typical sync, 1,000 creates, 1,000 updates. */
export async function singlePushScenarios(ctx: BenchContext): Promise<ScenarioResult[]> {
  const { vaultSize, pushReps } = ctx.plan;
  const cases: { id: string; title: string; mix: ChangeMix }[] = [
    { id: 'push-mixed-100', title: `push 100 mixed changes (40 creates, 40 updates, 20 deletes) into ${size(vaultSize)} records`, mix: typicalMix(100) },
    { id: 'push-create-1000', title: `push 1,000 new records into ${size(vaultSize)} records`, mix: { creates: 1000, updates: 0, deletes: 0 } },
    { id: 'push-update-1000', title: `push 1,000 updates into ${size(vaultSize)} records`, mix: { creates: 0, updates: 1000, deletes: 0 } },
  ];
  const out: ScenarioResult[] = [];
  for (const c of cases) {
    const rows = c.mix.creates + c.mix.updates + c.mix.deletes;
    out.push(await scenario(ctx, { id: c.id, title: c.title, rowsPerRun: rows, reps: pushReps }, pushTrial(ctx, c.id, 1, onePush(ctx, vaultSize, c.mix))));
  }
  return out;
}

/** A first import: `importRecords` new records in pushes of `importBatch`, into an empty vault. */
export async function importScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const { importRecords, importBatch, importReps, ciphertextBytes } = ctx.plan;
  const make = (): PushWorkload => {
    const model = new VaultModel(prng(seedCounter++));
    const pushes: Change[][] = [];
    for (let done = 0; done < importRecords; done += importBatch) {
      pushes.push(makeChanges(model, { creates: Math.min(importBatch, importRecords - done), updates: 0, deletes: 0 }, ciphertextBytes));
    }
    return { seed: { records: [], lastSeq: 0 }, pushes };
  };
  const title = `import ${size(importRecords)} records in pushes of ${size(importBatch)}`;
  return scenario(ctx, { id: 'import', title, rowsPerRun: importRecords, reps: importReps }, pushTrial(ctx, 'import', 1, make));
}

/**
 * What limited one implementation while `users` pushed at once: the Node process's CPU (a share of
 * one core, which is all the event loop can use), and the connection pool (connections in use, and
 * callers waiting for one), sampled every 5 ms.
 */
export interface Saturation {
  /** CPU time of this process over wall time, 1 = one core busy throughout. */
  nodeCpu: number;
  /** Most connections in use at once, and the pool's size. */
  poolUsedMax: number;
  poolSize: number;
  /** Most callers waiting for a connection at once, and their average over the samples. */
  poolWaitingMax: number;
  poolWaitingAvg: number;
  /** Busy share of all the machine's cores over the run (PostgreSQL runs on the same machine). */
  machineCpu: number;
  /** The verdict: the Node process, the machine's CPUs, the pool, or the database. */
  limit: 'Node process CPU' | 'machine CPU' | 'connection pool' | 'database';
}

/** Busy and total CPU time of all cores so far, ms. */
function machineTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of os.cpus()) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    total += all;
    busy += all - times.idle;
  }
  return { busy, total };
}

/** Samples CPU and pool while `work` runs. */
async function sampled<T>(probe: () => { used: number; waiting: number; size: number }, work: () => Promise<T>): Promise<{ value: T; saturation: Saturation }> {
  const cpu0 = process.cpuUsage();
  const machine0 = machineTimes();
  const t0 = performance.now();
  let usedMax = 0;
  let waitingMax = 0;
  let waitingSum = 0;
  let samples = 0;
  let size = 0;
  const timer = setInterval(() => {
    const p = probe();
    usedMax = Math.max(usedMax, p.used);
    waitingMax = Math.max(waitingMax, p.waiting);
    waitingSum += p.waiting;
    size = p.size;
    samples++;
  }, 5);
  try {
    const value = await work();
    const cpu = process.cpuUsage(cpu0);
    const nodeCpu = (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
    const poolWaitingAvg = samples ? waitingSum / samples : 0;
    const machine1 = machineTimes();
    const machineCpu = (machine1.busy - machine0.busy) / Math.max(1, machine1.total - machine0.total);
    // One event loop can't use more than one core: near it, Node is the bottleneck. With every
    // core busy, Node and PostgreSQL compete for them (a full pool then only queues). Otherwise a
    // pool with callers queueing most of the time is the limit; otherwise the database is.
    const limit =
      nodeCpu >= 0.85 ? 'Node process CPU' : machineCpu >= 0.9 ? 'machine CPU' : poolWaitingAvg >= 1 && usedMax >= size ? 'connection pool' : 'database';
    return { value, saturation: { nodeCpu, machineCpu, poolUsedMax: usedMax, poolSize: size, poolWaitingMax: waitingMax, poolWaitingAvg, limit } };
  } finally {
    clearInterval(timer);
  }
}

/**
 * `users` users, each sending typical 100-change syncs to a vault of their own, all at once. The
 * result carries what limited each implementation (see {@link Saturation}).
 */
export async function parallelScenario(ctx: BenchContext, users: number): Promise<ScenarioResult & { saturation: Partial<Record<ImplName, Saturation>> }> {
  const { parallelVaultSize, parallelPushesPerUser, parallelReps, ciphertextBytes } = ctx.plan;
  const make = (): PushWorkload => {
    const { seed, model } = liveVault(parallelVaultSize, ciphertextBytes, seedCounter++);
    return { seed, pushes: Array.from({ length: parallelPushesPerUser }, () => makeChanges(model, typicalMix(100), ciphertextBytes)) };
  };
  const title = `${users} users pushing in parallel (${parallelPushesPerUser} pushes of 100 changes each, vaults of ${size(parallelVaultSize)})`;
  const calls = users * parallelPushesPerUser;
  const trial = pushTrial(ctx, `parallel-${users}`, users, make);
  const saturation: Partial<Record<ImplName, Saturation>> = {};
  const run = trial.run;
  trial.run = async (impl, prepared) => {
    const name: ImplName = impl === ctx.impls.service ? 'service' : 'baseline';
    const { value, saturation: s } = await sampled(ctx.poolProbes[name], () => run(impl, prepared));
    // The last timed repetition's figures (the counting run comes first).
    saturation[name] = s;
    return value;
  };
  const result = await scenario(ctx, { id: `parallel-${users}`, title, rowsPerRun: calls, reps: parallelReps, throughputUnit: 'pushes/s' }, trial);
  return { ...result, saturation };
}

/** One typical-mix push of each size of `sweepSizes`, into a vault of `vaultSize` records. */
export async function batchSweep(ctx: BenchContext): Promise<ScenarioResult[]> {
  const out: ScenarioResult[] = [];
  for (const n of ctx.plan.sweepSizes) {
    const title = `push of ${size(n)} mixed changes into ${size(ctx.plan.vaultSize)} records`;
    out.push(await scenario(ctx, { id: `sweep-${n}`, title, rowsPerRun: n, reps: ctx.plan.sweepReps }, pushTrial(ctx, `sweep-${n}`, 1, onePush(ctx, ctx.plan.vaultSize, typicalMix(n)))));
  }
  return out;
}

/**
 * Untimed pushes of every kind through both implementations, so the first timed repetitions
 * don't pay for V8 compiling MikroORM's (or the baseline's) hot paths: a push of 1,000 changes
 * takes several times longer on a cold process than on a warm one, and a server is warm.
 */
export async function warmUp(ctx: BenchContext): Promise<void> {
  const mixes = [typicalMix(1000), { creates: 0, updates: 1000, deletes: 0 }, typicalMix(100)];
  for (let round = 0; round < ctx.plan.warmUpRounds; round++) {
    for (const mix of mixes) {
      const trial = pushTrial(ctx, 'warm-up', 1, onePush(ctx, 2000, mix));
      const prepared = await trial.prepare(round);
      const results = { service: await trial.run(ctx.impls.service, prepared.service), baseline: await trial.run(ctx.impls.baseline, prepared.baseline) };
      await trial.check(results, prepared);
      await trial.cleanup(prepared);
    }
  }
}
