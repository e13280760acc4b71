/**
 * A call that can't get the vault lock within `lockTimeoutMs` fails fast with a retryable
 * TransientError instead of hanging, writes nothing, and succeeds once the lock is free. Readers
 * never wait for the lock.
 */
import { afterEach, expect, test } from 'vitest';
import type pg from 'pg';
import { TransientError } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { envelope } from '../support/fixtures.js';
import { newVault, put, recordsDigest, rejectionOf, setupSyncDatabase, vaultDigest } from './support/sync.js';

const ctx = setupSyncDatabase();
const LOCK_TIMEOUT_MS = 200;
let holder: pg.PoolClient | undefined;

afterEach(async () => {
  // Never leave a lock behind for the next test, even when an assertion failed.
  if (holder) {
    await holder.query('rollback').catch(() => {});
    holder.release();
    holder = undefined;
  }
});

/** Holds the vault row lock from a raw connection, the way a concurrent push would. */
async function holdVaultLock(userId: string): Promise<void> {
  holder = await ctx.db.pool.connect();
  await holder.query('begin');
  const { rowCount } = await holder.query('select * from vaults where user_id = $1 for update', [userId]);
  expect(rowCount).toBe(1);
}

async function releaseVaultLock(): Promise<void> {
  await holder?.query('rollback');
  holder?.release();
  holder = undefined;
}

/** How long `work` took to settle, and how. */
async function timed<T>(work: Promise<T>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now();
  const error = await rejectionOf(work);
  return { ms: performance.now() - started, error };
}

test('a push blocked by the vault lock fails within a few seconds with a retryable TransientError, then succeeds once the lock is free', async () => {
  const sync = new SyncService(ctx.db.orm.em, { lockTimeoutMs: LOCK_TIMEOUT_MS });
  const user = await newVault(sync);
  await sync.push(user, { changes: [put('a', 0)] });
  const records = await recordsDigest(ctx.db.pool, user);
  const vault = await vaultDigest(ctx.db.pool, user);

  await holdVaultLock(user);
  const { ms, error } = await timed(sync.push(user, { changes: [put('a', 1), put('b', 0)] }));
  expect(error).toBeInstanceOf(TransientError);
  expect(error).toMatchObject({ code: 'transient', retryable: true });
  // It waited for the lock (about lockTimeoutMs), but not for the default 5 s or forever.
  expect(ms).toBeGreaterThanOrEqual(LOCK_TIMEOUT_MS * 0.8);
  expect(ms).toBeLessThan(3000);
  // The lock holder is still in its transaction: nothing of the failed push can have landed.
  expect(await recordsDigest(ctx.db.pool, user)).toBe(records);

  await releaseVaultLock();
  expect(await vaultDigest(ctx.db.pool, user)).toBe(vault);
  // Re-sending the very same call is what TransientError means, and it works now.
  const result = await sync.push(user, { changes: [put('a', 1), put('b', 0)] });
  expect(result.applied).toEqual([
    { recordId: 'a', version: 2 },
    { recordId: 'b', version: 1 },
  ]);
});

test('key changes blocked by the vault lock fail with TransientError too', async () => {
  const sync = new SyncService(ctx.db.orm.em, { lockTimeoutMs: LOCK_TIMEOUT_MS });
  const user = await newVault(sync);
  await holdVaultLock(user);
  expect(await rejectionOf(sync.rewrapKey(user, { expectedVersion: 1, ...envelope() }))).toBeInstanceOf(TransientError);
  expect(await rejectionOf(sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: [] }))).toBeInstanceOf(TransientError);
  expect(await rejectionOf(sync.disableVault(user))).toBeInstanceOf(TransientError);
  await releaseVaultLock();
  expect((await sync.getVault(user))?.version).toBe(1);
});

test('pull and getVault are not blocked by a held vault lock', async () => {
  const sync = new SyncService(ctx.db.orm.em, { lockTimeoutMs: LOCK_TIMEOUT_MS });
  const user = await newVault(sync);
  await sync.push(user, { changes: [put('a', 0)] });
  await holdVaultLock(user);
  const started = performance.now();
  expect((await sync.pull(user, {})).changes.map((c) => c.recordId)).toEqual(['a']);
  expect((await sync.getVault(user))?.userId).toBe(user);
  expect(performance.now() - started).toBeLessThan(LOCK_TIMEOUT_MS * 5);
});

test('the lock wait applies per call: a push queued behind a short-lived lock goes through', async () => {
  const sync = new SyncService(ctx.db.orm.em, { lockTimeoutMs: 3000 });
  const user = await newVault(sync);
  await holdVaultLock(user);
  const pending = sync.push(user, { changes: [put('a', 0)] });
  await new Promise((resolve) => setTimeout(resolve, 100));
  await releaseVaultLock();
  expect((await pending).applied).toEqual([{ recordId: 'a', version: 1 }]);
});
