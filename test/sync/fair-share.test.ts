/**
 * One user can't stall everyone (#12.4). Pushes queued behind a held vault lock each hold a pooled
 * connection; the per-vault gate lets only `maxConcurrentCallsPerVault` of them take one, refuses
 * the rest at once with a retry hint, and so leaves connections for other users. When the pool is
 * exhausted anyway, the caller gets a TransientError, not knex's raw KnexTimeoutError.
 *
 * The lock is a real row lock held by a raw transaction; the pool is MikroORM's own, made small.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { ConfigurationError, TransientError, VaultDbError } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { GATE_RETRY_AFTER_MS } from '../../src/sync/vault-gate.js';
import { POOL_RETRY_AFTER_MS } from '../../src/sync/transient.js';
import { createTestOrm, type TestOrm } from '../support/database.js';
import { envelope } from '../support/fixtures.js';
import { newUserId, put, rejectionOf } from './support/sync.js';

/** Far longer than any bound below: a call waiting for the lock would wait this long. */
const LOCK_TIMEOUT_MS = 30_000;
/** The generous bound on how long another user's call may take while one vault is stalled. */
const OTHER_USER_BOUND_MS = 5_000;

const opened: { holder?: pg.PoolClient; db?: TestOrm }[] = [];
afterEach(async () => {
  // Newest first: a held lock is released before its database is closed.
  for (const o of opened.splice(0).reverse()) {
    await o.holder?.query('rollback').catch(() => {});
    o.holder?.release();
    await o.db?.close();
  }
});

/** A database whose ORM has a pool of `max` connections, and `driverOptions` for knex. */
async function smallPool(max: number, driverOptions: Record<string, unknown> = {}): Promise<TestOrm> {
  const db = await createTestOrm({ pool: { min: 0, max }, driverOptions });
  opened.push({ db });
  return db;
}

/** Holds `userId`'s vault row lock from a raw connection, as a long push would. */
async function holdVaultLock(db: TestOrm, userId: string): Promise<{ release: () => Promise<void> }> {
  const holder = await db.pool.connect();
  const slot = { holder };
  opened.push(slot);
  await holder.query('begin');
  expect((await holder.query('select 1 from vaults where user_id = $1 for update', [userId])).rowCount).toBe(1);
  return {
    release: async () => {
      await holder.query('rollback');
      holder.release();
      delete (slot as { holder?: pg.PoolClient }).holder;
    },
  };
}

/**
 * How many backends of this database wait for a lock. (Not "blocked by the holder": the second
 * waiter on a row queues behind the first waiter's tuple lock, so only the first names the holder.)
 */
async function blockedCount(db: TestOrm): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    'select count(*)::int as n from pg_stat_activity where datname = current_database() and cardinality(pg_blocking_pids(pid)) > 0',
  );
  return rows[0]?.n ?? -1;
}

/** Waits until `count` backends wait for a lock (bounded, so a hang fails the test). */
async function waitForBlocked(db: TestOrm, count: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await blockedCount(db)) === count) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`never saw ${count} backends waiting for a lock (last: ${await blockedCount(db)})`);
}

/** Settles `work` or fails after `ms`, so a call stuck behind the pool fails the test instead of hanging it. */
async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('a fair share of the pool per vault', () => {
  test("eight pushes queued on one stalled vault don't hold up another user's pull; the excess is refused at once with a retry hint", async () => {
    const db = await smallPool(3);
    const sync = new SyncService(db.orm.em, { lockTimeoutMs: LOCK_TIMEOUT_MS });
    const stalled = newUserId('stalled');
    const other = newUserId('other');
    await sync.enableVault(stalled, envelope());
    await sync.enableVault(other, envelope());
    await sync.push(other, { changes: [put('b1', 0)] });

    const lock = await holdVaultLock(db, stalled);
    const pushes = Array.from({ length: 8 }, (_, i) => sync.push(stalled, { changes: [put(`s${i}`, 0, randomBytes(32))] }).then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    ));
    // Six are refused without waiting for the lock to go (without the gate, they queue for the pool) ...
    const refused = (await within(OTHER_USER_BOUND_MS, Promise.all(pushes.slice(2)))).map((o) => ('error' in o ? o.error : o));
    for (const error of refused) {
      expect(error).toBeInstanceOf(TransientError);
      expect(error).toMatchObject({ code: 'transient', retryable: true, retryAfterMs: GATE_RETRY_AFTER_MS });
    }
    // ... and two (the default share) wait on the lock in the database, each on a connection.
    await waitForBlocked(db, 2);

    // The third connection is free: the other user's calls go through while the vault is still locked.
    const page = await within(OTHER_USER_BOUND_MS, sync.pull(other, {}));
    expect(page.changes.map((c) => c.recordId)).toEqual(['b1']);
    await within(OTHER_USER_BOUND_MS, sync.push(other, { changes: [put('b2', 0)] }));
    expect(await blockedCount(db)).toBe(2);

    await lock.release();
    // The two admitted pushes were only waiting: they apply once the lock is free.
    const admitted = await Promise.all(pushes.slice(0, 2));
    for (const outcome of admitted) expect(outcome).toHaveProperty('result.conflicts', []);
    const { rows } = await db.pool.query<{ n: number }>('select count(*)::int as n from records where user_id = $1', [stalled]);
    expect(rows[0]?.n).toBe(2);
    // Slots are given back: the vault takes calls again.
    await expect(sync.push(stalled, { changes: [put('after', 0)] })).resolves.toMatchObject({ conflicts: [] });
  });

  test('maxConcurrentCallsPerVault sets the share: with 1, a second call of a stalled vault is refused at once', async () => {
    const db = await smallPool(3);
    const sync = new SyncService(db.orm.em, { lockTimeoutMs: LOCK_TIMEOUT_MS, maxConcurrentCallsPerVault: 1 });
    const user = newUserId();
    await sync.enableVault(user, envelope());
    const lock = await holdVaultLock(db, user);
    const first = sync.push(user, { changes: [put('a', 0)] });
    await waitForBlocked(db, 1);
    // A read of the same vault counts too: it would hold a connection just the same.
    expect(await within(OTHER_USER_BOUND_MS, rejectionOf(sync.pull(user, {})))).toBeInstanceOf(TransientError);
    await lock.release();
    await expect(first).resolves.toMatchObject({ conflicts: [] });
  });
});

describe('pool exhaustion', () => {
  test("knex's acquire timeout reaches the caller as a TransientError (a VaultDbError) with a retry hint", async () => {
    const db = await smallPool(1, { acquireConnectionTimeout: 500 });
    const sync = new SyncService(db.orm.em, { lockTimeoutMs: LOCK_TIMEOUT_MS });
    const stalled = newUserId('stalled');
    const other = newUserId('other');
    await sync.enableVault(stalled, envelope());
    await sync.enableVault(other, envelope());

    const lock = await holdVaultLock(db, stalled);
    // The pool's only connection waits on the lock.
    const blocked = sync.push(stalled, { changes: [put('a', 0)] });
    await waitForBlocked(db, 1);
    const error = await within(OTHER_USER_BOUND_MS, rejectionOf(sync.getVault(other)));
    expect(error).toBeInstanceOf(VaultDbError);
    expect(error).toBeInstanceOf(TransientError);
    expect(error).toMatchObject({ code: 'transient', retryable: true, retryAfterMs: POOL_RETRY_AFTER_MS });
    expect((error as Error).message).toContain('No database connection was free in time');

    await lock.release();
    await expect(blocked).resolves.toMatchObject({ conflicts: [] });
    // The retry the error asks for works once the pool has room.
    expect((await sync.getVault(other))?.userId).toBe(other);
  });
});

describe('options are checked when the service is built', () => {
  let db: TestOrm;
  beforeAll(async () => {
    db = await createTestOrm({ pool: { min: 0, max: 1 } });
  });
  afterAll(async () => {
    await db?.close();
  });

  test.each([
    { lockTimeoutMs: 0 },
    { lockTimeoutMs: Number.NaN },
    { lockTimeoutMs: Number.POSITIVE_INFINITY },
    { lockTimeoutMs: 3e9 },
    { limits: { maxChanges: undefined, maxRecordBytes: Number.NaN } },
    { maxConcurrentCallsPerVault: 0 },
    { lockTimout: 5000 },
  ])('new SyncService(em, %o) throws ConfigurationError', (options) => {
    expect(() => new SyncService(db.orm.em, options as never)).toThrow(ConfigurationError);
  });
});
