/**
 * An untimed walk through every judge rule, run against the service and the baseline on identical
 * vaults: creates, stale and current updates, deletes, tombstones brought back, re-sent pushes,
 * atomic pushes with and without conflicts, an empty push, a stale cursor, paged pulls and the
 * errors for a missing vault and a cursor from the future. The timed scenarios only exercise the
 * happy path; this is what makes "identical results" mean something for the rest.
 *
 * @module
 */
import { encodeCursor } from '../src/sync/cursor.js';
import type { Change, PullInput, PushInput } from '../src/sync/types.js';
import type { SyncImplementation } from './baseline.js';
import { checkTimestamps, normalizePull, normalizePush } from './compare.js';
import type { BenchContext, ImplName } from './harness.js';
import { benchUser, dropVaults, seedVault, vaultFingerprint, type SeededVault } from './seed.js';
import { ciphertext, type SeedRecord } from './workload.js';

const BYTES = 48;

/** a1..a10 live at version 1 (positions 1..10), t1..t3 tombstones at version 2 (11..13). */
function seedRecords(): SeedRecord[] {
  const live = Array.from({ length: 10 }, (_, i) => ({ recordId: `a${i + 1}`, version: 1, deleted: false, ciphertext: ciphertext(BYTES), seq: i + 1 }));
  const gone = Array.from({ length: 3 }, (_, i) => ({ recordId: `t${i + 1}`, version: 2, deleted: true, ciphertext: Buffer.alloc(0), seq: 11 + i }));
  return [...live, ...gone];
}

type Step = { kind: 'push'; input: PushInput; cursor: 'threaded' | 'initial' | 'none' | 'future' } | { kind: 'pull'; input: PullInput; cursor: 'none' | 'initial' | 'threaded' };

function steps(): Step[] {
  const n1 = ciphertext(BYTES);
  const first: Change[] = [
    { recordId: 'n1', baseVersion: 0, ciphertext: n1 }, // create
    { recordId: 'a1', baseVersion: 0, ciphertext: ciphertext(BYTES) }, // exists
    { recordId: 'a2', baseVersion: 1, ciphertext: ciphertext(BYTES) }, // update
    { recordId: 'a3', baseVersion: 5, ciphertext: ciphertext(BYTES) }, // version_mismatch
    { recordId: 't1', baseVersion: 1, ciphertext: ciphertext(BYTES) }, // gone (tombstone)
    { recordId: 'ghost', baseVersion: 3, ciphertext: ciphertext(BYTES) }, // gone (never existed)
    { recordId: 'a4', baseVersion: 1, deleted: true }, // delete
    { recordId: 't2', baseVersion: 2, ciphertext: ciphertext(BYTES) }, // tombstone brought back
    { recordId: 't3', baseVersion: 1, deleted: true }, // a delete that already applied
    { recordId: 'never-seen', baseVersion: 0, deleted: true }, // gone (a delete of nothing)
  ];
  return [
    { kind: 'push', input: { changes: first }, cursor: 'threaded' },
    // The response was lost; the device sends the same push again.
    { kind: 'push', input: { changes: first }, cursor: 'threaded' },
    {
      kind: 'push',
      input: {
        atomic: true,
        changes: [
          { recordId: 'n1', baseVersion: 0, ciphertext: n1 },
          { recordId: 'a5', baseVersion: 1, ciphertext: ciphertext(BYTES) },
          { recordId: 'a6', baseVersion: 9, ciphertext: ciphertext(BYTES) },
        ],
      },
      cursor: 'threaded',
    },
    {
      kind: 'push',
      input: {
        atomic: true,
        changes: [
          { recordId: 'a5', baseVersion: 1, ciphertext: ciphertext(BYTES) },
          { recordId: 'a6', baseVersion: 1, deleted: true },
        ],
      },
      cursor: 'threaded',
    },
    { kind: 'push', input: { changes: [] }, cursor: 'threaded' },
    { kind: 'push', input: { changes: [{ recordId: 'a7', baseVersion: 1, ciphertext: ciphertext(BYTES) }] }, cursor: 'initial' },
    { kind: 'push', input: { changes: [{ recordId: 'a8', baseVersion: 1, ciphertext: ciphertext(BYTES) }] }, cursor: 'none' },
    { kind: 'push', input: { changes: [{ recordId: 'a9', baseVersion: 1, ciphertext: ciphertext(BYTES) }] }, cursor: 'future' },
    { kind: 'pull', input: { limit: 3 }, cursor: 'none' },
    { kind: 'pull', input: { maxBytes: BYTES + 1 }, cursor: 'initial' },
    // A budget smaller than any record: every page is one oversized record, and says more wait.
    { kind: 'pull', input: { maxBytes: BYTES - 1 }, cursor: 'none' },
    { kind: 'pull', input: {}, cursor: 'threaded' },
  ];
}

/** The result of a call, or the class of the error it threw. */
async function outcome<T>(call: () => Promise<T>, normalize: (value: T) => unknown): Promise<unknown> {
  try {
    return normalize(await call());
  } catch (error) {
    return { error: error instanceof Error ? error.name : String(error) };
  }
}

async function walk(ctx: BenchContext, impl: SyncImplementation, name: ImplName, vault: SeededVault, plan: Step[]): Promise<unknown[]> {
  const initial = encodeCursor(vault.vaultId, 13);
  let threaded = initial;
  const out: unknown[] = [];
  for (const step of plan) {
    const cursor = step.cursor === 'threaded' ? threaded : step.cursor === 'initial' ? initial : step.cursor === 'future' ? encodeCursor(vault.vaultId, 9999) : null;
    if (step.kind === 'push') {
      out.push(
        await outcome(
          () => impl.push(vault.userId, { ...step.input, cursor }),
          (r) => {
            threaded = r.cursor;
            return normalizePush(r, vault.vaultId);
          },
        ),
      );
    } else {
      // Page to the end, so paging by `limit` and by `maxBytes` is compared too.
      const pages: unknown[] = [];
      let next = cursor;
      for (let i = 0; i < 100; i++) {
        const page = await impl.pull(vault.userId, { ...step.input, cursor: next });
        if (name === 'service') checkTimestamps(ctx.findings, 'SyncService', 'pull', page.changes);
        pages.push(normalizePull(page, vault.vaultId));
        next = page.cursor;
        if (!page.hasMore) break;
      }
      threaded = next ?? threaded;
      out.push(pages);
    }
  }
  out.push(await outcome(() => impl.pull(benchUser('nobody'), {}), () => 'ok'));
  out.push(await outcome(() => impl.push(benchUser('nobody'), { changes: [] }), () => 'ok'));
  return out;
}

/** Runs the walk on both implementations and records every difference as a mismatch. */
export async function checkCorrectness(ctx: BenchContext): Promise<void> {
  const records = seedRecords();
  const vaults: Record<ImplName, SeededVault> = {
    service: await seedVault(ctx.seedPool, benchUser('judge-service'), { records, lastSeq: 13 }),
    baseline: await seedVault(ctx.seedPool, benchUser('judge-baseline'), { records, lastSeq: 13 }),
  };
  try {
    // One plan for both: its ciphertexts are random.
    const plan = steps();
    const service = await walk(ctx, ctx.impls.service, 'service', vaults.service, plan);
    const baseline = await walk(ctx, ctx.impls.baseline, 'baseline', vaults.baseline, plan);
    service.forEach((s, i) => ctx.findings.same(`judge walk step ${i + 1}`, s, baseline[i]));
    ctx.findings.same('judge walk final rows', await vaultFingerprint(ctx.seedPool, vaults.service.vaultId), await vaultFingerprint(ctx.seedPool, vaults.baseline.vaultId));
  } finally {
    await dropVaults(ctx.seedPool, Object.values(vaults));
  }
}
