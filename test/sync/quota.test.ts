/**
 * Requests and vaults are bounded (issue #9.4): total ciphertext per push and per rotation call
 * are checked before any SQL, and each vault has a quota of live records and live ciphertext
 * bytes, checked under the vault lock from the counters the database keeps. Going over is a
 * `LimitExceededError` naming the limit, the value and the record, and nothing is written.
 */
import { describe, expect, test } from 'vitest';
import { LimitExceededError } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { DEFAULT_LIMITS, type Change, type SyncLimits } from '../../src/sync/types.js';
import { envelope } from '../support/fixtures.js';
import { bytes, del, newVault, pullAll, put, rejectionOf, setupSyncDatabase, storedRecords, tableDigest } from './support/sync.js';

const ctx = setupSyncDatabase();
const KiB = 1024;
const MiB = 1024 * KiB;

function service(limits: Partial<SyncLimits>): SyncService {
  return new SyncService(ctx.db.orm.em, { limits });
}

/** Runs a call that must be refused with LimitExceededError, checks it wrote nothing, returns the error. */
async function refused(call: () => Promise<unknown>): Promise<LimitExceededError> {
  const before = await tableDigest(ctx.db.pool);
  const error = await rejectionOf(call());
  expect(error).toBeInstanceOf(LimitExceededError);
  expect(await tableDigest(ctx.db.pool)).toEqual(before);
  return error as LimitExceededError;
}

const creates = (prefix: string, n: number, size = 16): Change[] => Array.from({ length: n }, (_, i) => put(`${prefix}${i}`, 0, bytes(size)));

test('the defaults are published on service.limits', () => {
  expect(ctx.sync.limits).toMatchObject({
    maxPushBytes: 4 * MiB,
    maxRotationBytes: 16 * MiB,
    maxRotationRecords: 10_000,
    maxVaultRecords: 100_000,
    maxVaultBytes: 256 * MiB,
  });
  expect(DEFAULT_LIMITS).toMatchObject(ctx.sync.limits);
});

describe('per request, before any SQL', () => {
  test('a push carrying more than maxPushBytes in all is refused naming the limit and the total; exactly the limit is accepted', async () => {
    const user = await newVault(ctx.sync);
    // 64 records of 64 KiB are exactly 4 MiB; one byte more is over.
    const atLimit = creates('r', 64, 64 * KiB);
    const error = await refused(() => ctx.sync.push(user, { changes: [...atLimit.slice(0, 63), put('r63', 0, bytes(64 * KiB)), put('one-more', 0, bytes(1))] }));
    expect(error.violations).toEqual([{ path: 'changes', rule: `a push carries at most ${4 * MiB} bytes of ciphertext, not ${4 * MiB + 1}; split it` }]);
    expect((await ctx.sync.push(user, { changes: atLimit })).applied).toHaveLength(64);
  });

  test('rotateKey and stageKeyRotation are bounded by maxRotationRecords and maxRotationBytes per call', async () => {
    const sync = service({ maxRotationRecords: 3, maxRotationBytes: 100 });
    const user = await newVault(sync);
    await sync.push(user, { changes: creates('r', 4, 10) });
    const records = (n: number, size: number) => Array.from({ length: n }, (_, i) => ({ recordId: `r${i}`, baseVersion: 1, ciphertext: bytes(size) }));

    const tooMany = await refused(() => sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: records(4, 10) }));
    expect(tooMany.message).toMatch(/at most 3 records, not 4/);
    const tooBig = await refused(() => sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: records(3, 34) }));
    expect(tooBig.violations).toEqual([{ path: 'records', rule: 'a rotateKey call carries at most 100 bytes of ciphertext, not 102; split it' }]);

    const { rotationId } = await sync.beginKeyRotation(user, { expectedVersion: 1 });
    expect((await refused(() => sync.stageKeyRotation(user, { rotationId, records: records(4, 10) }))).message).toMatch(/at most 3 records/);
    expect((await refused(() => sync.stageKeyRotation(user, { rotationId, records: records(3, 34) }))).message).toMatch(/at most 100 bytes/);
    expect(await sync.stageKeyRotation(user, { rotationId, records: records(3, 33) })).toEqual({ staged: 3 });
  });
});

describe('the per-vault quota, under the vault lock', () => {
  test('a push that would take a vault past maxVaultRecords is refused naming the limit, the count and the record that crossed it', async () => {
    const sync = service({ maxVaultRecords: 5 });
    const user = await newVault(sync);
    const error = await refused(() => sync.push(user, { changes: creates('n', 6) }));
    expect(error.violations).toEqual([{ path: 'changes.5', recordId: 'n5', rule: 'the vault would hold 6 live records; maxVaultRecords is 5' }]);
    expect(error.recordId).toBe('n5');
    expect((await sync.push(user, { changes: creates('n', 5) })).applied).toHaveLength(5);
    expect((await refused(() => sync.push(user, { changes: [put('extra', 0)] }))).recordId).toBe('extra');
    // A delete and a create in one push leave the count where it was.
    expect((await sync.push(user, { changes: [del('n0', 1), put('extra', 0)] })).applied).toHaveLength(2);
    // Bringing a tombstone back to life counts as growth.
    expect((await refused(() => sync.push(user, { changes: [put('n0', 2)] }))).recordId).toBe('n0');
  });

  test('maxVaultBytes counts live ciphertext: growing updates are refused, shrinking ones and deletes always pass', async () => {
    const sync = service({ maxVaultBytes: 1000 });
    const user = await newVault(sync);
    await sync.push(user, { changes: [put('a', 0, bytes(400)), put('b', 0, bytes(400))] });
    // a shrinks by 100, b grows by 301: 1,001 bytes in all.
    const error = await refused(() => sync.push(user, { changes: [put('a', 1, bytes(300)), put('b', 1, bytes(701))] }));
    expect(error.violations).toEqual([{ path: 'changes.1', recordId: 'b', rule: 'the vault would hold 1001 bytes of live ciphertext; maxVaultBytes is 1000' }]);
    // Exactly the limit is fine, and so is shrinking or deleting from there.
    expect((await sync.push(user, { changes: [put('a', 1, bytes(300)), put('b', 1, bytes(700))] })).applied).toHaveLength(2);
    expect((await sync.push(user, { changes: [put('a', 2, bytes(10)), del('b', 2)] })).applied).toHaveLength(2);
    const { rows } = await ctx.db.pool.query<{ record_count: number; stored_bytes: string }>('select record_count, stored_bytes from vaults where user_id = $1', [user]);
    expect(rows[0]).toEqual({ record_count: 1, stored_bytes: '10' });
  });

  test('a vault already over its quota (the limit was lowered) can still shrink and delete, but not grow', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: creates('x', 4, 100) });
    const strict = service({ maxVaultRecords: 2, maxVaultBytes: 250 });
    expect((await strict.push(user, { changes: [del('x0', 1), put('x1', 1, bytes(50))] })).applied).toHaveLength(2);
    const error = await refused(() => strict.push(user, { changes: [put('y', 0, bytes(1))] }));
    expect(error.violations.map((v) => v.rule)).toEqual([
      'the vault would hold 4 live records; maxVaultRecords is 2',
      'the vault would hold 251 bytes of live ciphertext; maxVaultBytes is 250',
    ]);
  });

  test('records written by raw SQL count too: the quota reads the counters the database keeps', async () => {
    const sync = service({ maxVaultRecords: 3 });
    const user = await newVault(sync);
    const { rows } = await ctx.db.pool.query<{ id: string }>('select id from vaults where user_id = $1', [user]);
    for (const id of ['r1', 'r2', 'r3']) await ctx.db.pool.query('insert into records (user_id, vault_id, record_id, ciphertext) values ($1, $2, $3, $4)', [user, rows[0]?.id, id, bytes()]);
    expect((await refused(() => sync.push(user, { changes: [put('svc', 0)] }))).message).toMatch(/4 live records; maxVaultRecords is 3/);
  });

  test('two concurrent pushes that together exceed the quota can\'t both pass', async () => {
    const sync = service({ maxVaultRecords: 10 });
    for (let round = 0; round < 6; round++) {
      const user = await newVault(sync);
      const outcomes = await Promise.allSettled([sync.push(user, { changes: creates('a', 6) }), sync.push(user, { changes: creates('b', 6) })]);
      const passed = outcomes.filter((o) => o.status === 'fulfilled');
      expect(passed).toHaveLength(1);
      const failed = outcomes.find((o) => o.status === 'rejected');
      expect(failed?.status === 'rejected' && failed.reason).toBeInstanceOf(LimitExceededError);
      const rows = await storedRecords(ctx.db.pool, user);
      expect(rows.size).toBe(6);
      // The cursor of the push that passed is valid and the feed holds exactly its records.
      expect((await pullAll(sync, user, null)).changes).toHaveLength(6);
    }
  });
});
