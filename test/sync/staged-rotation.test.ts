/**
 * Staged key rotation (issue #9.4), for vaults larger than one `rotateKey` call may carry: begin,
 * upload re-encrypted records in chunks within the per-call limits, commit everything and the new
 * envelope in one transaction. The old key stays valid until the commit, so pushes go on; a commit
 * whose staged set is not exactly the live records at their versions changes nothing and says
 * which records to re-stage, and the staged records stay for the next attempt.
 */
import { describe, expect, test } from 'vitest';
import { LimitExceededError, RotationNotFoundError, ValidationError, VersionConflictError } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import type { ReencryptedRecord } from '../../src/sync/types.js';
import { argon2id, envelope } from '../support/fixtures.js';
import { bytes, del, newVault, pullAll, put, rejectionOf, setupSyncDatabase, storedRecords, tableDigest } from './support/sync.js';

const ctx = setupSyncDatabase();

/** A vault with live a, b, c (b at version 2) and a tombstone d. */
async function vault(): Promise<string> {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0), put('d', 0)] });
  await ctx.sync.push(user, { changes: [put('b', 1), del('d', 1)] });
  return user;
}

/** Re-encrypted versions of the live records `ids`, at their stored versions. */
async function reencrypt(user: string, ids?: string[]): Promise<(ReencryptedRecord & { ciphertext: Buffer })[]> {
  const live = [...(await storedRecords(ctx.db.pool, user)).values()].filter((r) => !r.deleted && (ids === undefined || ids.includes(r.recordId)));
  return live.map((r) => ({ recordId: r.recordId, baseVersion: r.version, ciphertext: bytes(40) }));
}

async function stagedCount(user: string): Promise<number> {
  const { rows } = await ctx.db.pool.query<{ n: number }>('select count(*)::int as n from staged_records where user_id = $1', [user]);
  return (rows[0] as { n: number }).n;
}

/** Digest of the vault and its records (not the staging tables). */
const digest = () => tableDigest(ctx.db.pool);

test('begin, stage in chunks, commit: every live record re-encrypted (version + 1, a new feed position) and the envelope replaced, in one go', async () => {
  const user = await vault();
  const before = await storedRecords(ctx.db.pool, user);
  const { cursor } = await pullAll(ctx.sync, user, null);
  const records = await reencrypt(user);

  const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
  expect(await ctx.sync.stageKeyRotation(user, { rotationId, records: records.slice(0, 2) })).toEqual({ staged: 2 });
  expect(await ctx.sync.stageKeyRotation(user, { rotationId, records: records.slice(2) })).toEqual({ staged: 3 });
  const next = envelope(argon2id);
  const info = await ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...next });
  expect(info).toMatchObject({ version: 2, keyVersion: 2, kdfParams: argon2id });
  expect(info.wrappedKey.equals(Buffer.from(next.wrappedKey))).toBe(true);

  const after = await storedRecords(ctx.db.pool, user);
  const head = Math.max(...[...before.values()].map((r) => r.seq));
  for (const r of records) {
    const row = after.get(r.recordId);
    expect(row?.version).toBe(r.baseVersion + 1);
    expect(row?.ciphertext.equals(r.ciphertext)).toBe(true);
    expect(row?.seq).toBeGreaterThan(head);
  }
  expect(after.get('d')).toEqual(before.get('d'));
  expect(await stagedCount(user)).toBe(0);
  expect((await pullAll(ctx.sync, user, cursor)).changes.map((c) => [c.recordId, c.version]).sort()).toEqual([
    ['a', 2],
    ['b', 3],
    ['c', 2],
  ]);
  // The old key is gone: a push under it is refused, the new one works.
  await expect(ctx.sync.push(user, { changes: [put('a', 2)], keyVersion: 1 })).rejects.toMatchObject({ code: 'stale_key' });
  expect((await ctx.sync.push(user, { changes: [put('a', 2)], keyVersion: 2 })).applied).toEqual([{ recordId: 'a', version: 3 }]);
});

describe('the old key stays valid until the commit; a commit over a changed vault fails for the changed records only', () => {
  test('a push between stage and commit: the commit lists that record alone as stale, changes nothing, and succeeds once it is re-staged', async () => {
    const user = await vault();
    const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(user, { rotationId, records: await reencrypt(user) });
    // Another device, still on the old key, edits "a".
    expect((await ctx.sync.push(user, { changes: [put('a', 1)], keyVersion: 1 })).applied).toEqual([{ recordId: 'a', version: 2 }]);

    const before = await digest();
    const error = await rejectionOf(ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() }));
    expect(error).toBeInstanceOf(VersionConflictError);
    expect((error as VersionConflictError).mismatch).toEqual({ missing: [], unknown: [], stale: ['a'] });
    expect((error as VersionConflictError).message).toMatch(/"a"/);
    expect(await digest()).toEqual(before);
    expect(await stagedCount(user)).toBe(3);

    await ctx.sync.stageKeyRotation(user, { rotationId, records: await reencrypt(user, ['a']) });
    expect((await ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() })).keyVersion).toBe(2);
  });

  test('a record created since is missing, one deleted since is unknown; staging the one and removing the other fixes the commit', async () => {
    const user = await vault();
    const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(user, { rotationId, records: await reencrypt(user) });
    await ctx.sync.push(user, { changes: [put('e', 0), del('c', 1)], keyVersion: 1 });

    const error = await rejectionOf(ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() }));
    expect((error as VersionConflictError).mismatch).toEqual({ missing: ['e'], unknown: ['c'], stale: [] });
    expect(await ctx.sync.stageKeyRotation(user, { rotationId, records: await reencrypt(user, ['e']), remove: ['c'] })).toEqual({ staged: 3 });
    await ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() });
    const rows = await storedRecords(ctx.db.pool, user);
    expect([...rows.values()].map((r) => [r.recordId, r.version, r.deleted])).toEqual([
      ['a', 2, false],
      ['b', 3, false],
      ['c', 2, true],
      ['d', 2, true],
      ['e', 2, false],
    ]);
  });

  test('re-staging a record replaces it: the last upload is what the commit writes', async () => {
    const user = await vault();
    const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(user, { rotationId, records: await reencrypt(user) });
    const [last] = await reencrypt(user, ['b']);
    expect(await ctx.sync.stageKeyRotation(user, { rotationId, records: [last as ReencryptedRecord] })).toEqual({ staged: 3 });
    await ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() });
    expect((await storedRecords(ctx.db.pool, user)).get('b')?.ciphertext.equals(last?.ciphertext as Buffer)).toBe(true);
  });

  test('an envelope changed since begin (a rewrap) makes the commit a VersionConflictError; the staged records stay', async () => {
    const user = await vault();
    const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(user, { rotationId, records: await reencrypt(user) });
    await ctx.sync.rewrapKey(user, { expectedVersion: 1, ...envelope() });
    const error = await rejectionOf(ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() }));
    expect(error).toMatchObject({ code: 'version_conflict', currentVersion: 2 });
    expect(await stagedCount(user)).toBe(3);
    expect((await ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 2, ...envelope() })).version).toBe(3);
  });
});

describe('one rotation per vault', () => {
  test('begin replaces an earlier rotation, whose id is then unknown and whose staged records are gone', async () => {
    const user = await vault();
    const first = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(user, { rotationId: first.rotationId, records: await reencrypt(user) });
    const second = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    expect(second.rotationId).not.toBe(first.rotationId);
    expect(await stagedCount(user)).toBe(0);
    const error = await rejectionOf(ctx.sync.stageKeyRotation(user, { rotationId: first.rotationId, records: [] }));
    expect(error).toBeInstanceOf(RotationNotFoundError);
    expect(error).toMatchObject({ code: 'rotation_not_found', rotationId: first.rotationId });
  });

  test('abort deletes the rotation and its staged records, and is safe to repeat; rotateKey and disableVault drop an open one too', async () => {
    const user = await vault();
    const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(user, { rotationId, records: await reencrypt(user) });
    expect(await ctx.sync.abortKeyRotation(user, { rotationId })).toEqual({ aborted: true });
    expect(await ctx.sync.abortKeyRotation(user, { rotationId })).toEqual({ aborted: false });
    expect(await stagedCount(user)).toBe(0);
    expect(await rejectionOf(ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() }))).toBeInstanceOf(RotationNotFoundError);

    const open = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(user, { rotationId: open.rotationId, records: await reencrypt(user) });
    await ctx.sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: await reencrypt(user) });
    expect(await stagedCount(user)).toBe(0);

    const last = await ctx.sync.beginKeyRotation(user, { expectedVersion: 2 });
    await ctx.sync.stageKeyRotation(user, { rotationId: last.rotationId, records: await reencrypt(user) });
    await ctx.sync.disableVault(user);
    const { rows } = await ctx.db.pool.query<{ n: number }>('select count(*)::int as n from key_rotations where user_id = $1', [user]);
    expect(rows[0]?.n).toBe(0);
    expect(await stagedCount(user)).toBe(0);
  });

  test('another user\'s rotation id is unknown to stage, commit and abort, and its staged records are untouched', async () => {
    const owner = await vault();
    const intruder = await vault();
    const { rotationId } = await ctx.sync.beginKeyRotation(owner, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(owner, { rotationId, records: await reencrypt(owner) });
    expect(await rejectionOf(ctx.sync.stageKeyRotation(intruder, { rotationId, records: await reencrypt(intruder) }))).toBeInstanceOf(RotationNotFoundError);
    expect(await rejectionOf(ctx.sync.commitKeyRotation(intruder, { rotationId, expectedVersion: 1, ...envelope() }))).toBeInstanceOf(RotationNotFoundError);
    expect(await ctx.sync.abortKeyRotation(intruder, { rotationId })).toEqual({ aborted: false });
    expect(await stagedCount(owner)).toBe(3);
    expect(await stagedCount(intruder)).toBe(0);
  });
});

describe('bad input and limits', () => {
  test('a stale expectedVersion at begin is VersionConflictError and opens nothing', async () => {
    const user = await vault();
    expect(await rejectionOf(ctx.sync.beginKeyRotation(user, { expectedVersion: 7 }))).toBeInstanceOf(VersionConflictError);
    const { rows } = await ctx.db.pool.query<{ n: number }>('select count(*)::int as n from key_rotations where user_id = $1', [user]);
    expect(rows[0]?.n).toBe(0);
  });

  test.each([
    ['a rotationId that is not a UUID', { rotationId: 'nope', records: [] }],
    ['a record both staged and removed', { rotationId: '00000000-0000-4000-8000-000000000000', records: [{ recordId: 'a', baseVersion: 1, ciphertext: bytes() }], remove: ['a'] }],
    ['remove that is not an array', { rotationId: '00000000-0000-4000-8000-000000000000', records: [], remove: 'a' }],
  ])('%s is a ValidationError', async (_name, input) => {
    const user = await vault();
    expect(await rejectionOf(ctx.sync.stageKeyRotation(user, input as never))).toBeInstanceOf(ValidationError);
  });

  test('the staged set may not outgrow the vault quota: the chunk that would is rolled back, earlier ones stay', async () => {
    const sync = new SyncService(ctx.db.orm.em, { limits: { maxVaultRecords: 4 } });
    const user = await vault();
    const { rotationId } = await sync.beginKeyRotation(user, { expectedVersion: 1 });
    await sync.stageKeyRotation(user, { rotationId, records: await reencrypt(user) });
    const extra = ['x1', 'x2'].map((recordId) => ({ recordId, baseVersion: 1, ciphertext: bytes() }));
    const error = await rejectionOf(sync.stageKeyRotation(user, { rotationId, records: extra }));
    expect(error).toBeInstanceOf(LimitExceededError);
    expect((error as Error).message).toMatch(/stage 5 records; maxVaultRecords is 4/);
    expect(await stagedCount(user)).toBe(3);
  });
  test('the staged set may reach the quota exactly, in records and in bytes; a byte more is refused by the byte rule alone', async () => {
    const sync = new SyncService(ctx.db.orm.em, { limits: { maxVaultRecords: 5, maxVaultBytes: 160 } });
    const user = await vault();
    const { rotationId } = await sync.beginKeyRotation(user, { expectedVersion: 1 });
    // The three live records of 40 bytes and one more: 4 records, 160 bytes, the byte quota exactly.
    const atQuota = [...(await reencrypt(user)), { recordId: 'x1', baseVersion: 1, ciphertext: bytes(40) }];
    expect(await sync.stageKeyRotation(user, { rotationId, records: atQuota })).toEqual({ staged: 4 });
    // A fifth record reaches the record quota exactly, and its one byte is one too many.
    const error = await rejectionOf(sync.stageKeyRotation(user, { rotationId, records: [{ recordId: 'x2', baseVersion: 1, ciphertext: bytes(1) }] }));
    expect(error).toBeInstanceOf(LimitExceededError);
    expect((error as LimitExceededError).violations).toEqual([{ path: 'records', rule: 'the rotation would stage 161 bytes; maxVaultBytes is 160' }]);
    expect(await stagedCount(user)).toBe(4);
  });

  test('a commit may not grow the vault past its byte quota, and may reach it exactly', async () => {
    const user = await vault();
    // Staged with the default limits: the three live records (3 x 48 bytes stored) at 100 bytes each.
    const records = (await reencrypt(user)).map((r) => ({ ...r, ciphertext: bytes(100) }));
    const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
    await ctx.sync.stageKeyRotation(user, { rotationId, records });
    const before = await digest();

    const tight = new SyncService(ctx.db.orm.em, { limits: { maxVaultBytes: 299 } });
    const error = await rejectionOf(tight.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() }));
    expect(error).toBeInstanceOf(LimitExceededError);
    expect((error as LimitExceededError).violations).toEqual([{ path: 'records', rule: 'the vault would hold 300 bytes of live ciphertext; maxVaultBytes is 299' }]);
    expect(await digest()).toEqual(before);

    const exact = new SyncService(ctx.db.orm.em, { limits: { maxVaultBytes: 300 } });
    expect(await exact.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() })).toMatchObject({ keyVersion: 2 });
  });
});

test('a 20,000-record vault rotates within the per-call limits (which one rotateKey call can\'t)', { timeout: 240_000 }, async () => {
  const user = await newVault(ctx.sync);
  const TOTAL = 20_000;
  // Seeded in one raw statement (the subject here is the rotation, not 20 pushes).
  await ctx.db.pool.query(
    `insert into records (user_id, vault_id, record_id, ciphertext, seq)
     select $1, v.id, 'r' || i, decode(md5(i::text) || md5(i::text), 'hex'), i from vaults v, generate_series(1, $2) as i where v.user_id = $1`,
    [user, TOTAL],
  );
  const { cursor } = await pullAll(ctx.sync, user, null, { limit: 1000 });
  const records = Array.from({ length: TOTAL }, (_, i) => ({ recordId: `r${i + 1}`, baseVersion: 1, ciphertext: bytes(64) }));

  const tooBig = await rejectionOf(ctx.sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records }));
  expect(tooBig).toBeInstanceOf(LimitExceededError);

  const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 1 });
  const chunk = ctx.sync.limits.maxRotationRecords;
  for (let start = 0; start < TOTAL; start += chunk) {
    expect(await ctx.sync.stageKeyRotation(user, { rotationId, records: records.slice(start, start + chunk) })).toEqual({ staged: Math.min(start + chunk, TOTAL) });
  }
  const info = await ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 1, ...envelope() });
  expect(info).toMatchObject({ version: 2, keyVersion: 2 });

  const { rows } = await ctx.db.pool.query<{ n: number; versions: number[]; matching: number }>(
    `select count(*)::int as n, array_agg(distinct r.version) as versions, count(*) filter (where r.ciphertext = s.c)::int as matching
     from records r left join unnest($2::text[], $3::bytea[]) as s(id, c) on s.id = r.record_id
     where r.user_id = $1`,
    [user, records.map((r) => r.recordId), records.map((r) => r.ciphertext)],
  );
  expect(rows[0]).toEqual({ n: TOTAL, versions: [2], matching: TOTAL });
  const pulled = await pullAll(ctx.sync, user, cursor, { limit: 1000 });
  expect(new Set(pulled.changes.map((c) => c.recordId)).size).toBe(TOTAL);
});
