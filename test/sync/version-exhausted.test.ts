/**
 * A record at the last version an `integer` holds (2,147,483,647) can't be written again; that is a
 * conflict of that record alone, never a failure of the whole push (issue #12.6). The same holds
 * for a create when the vault's version floor has reached the top. Practically unreachable, so the
 * tests move the versions there with raw SQL.
 */
import { expect, test } from 'vitest';
import { LimitExceededError } from '../../src/errors.js';
import { envelope } from '../support/fixtures.js';
import { bytes, del, newVault, pullAll, put, rejectionOf, setupSyncDatabase, storedRecord } from './support/sync.js';

const ctx = setupSyncDatabase();
const MAX = 2_147_483_647;

async function atMax(user: string, recordId: string): Promise<void> {
  await ctx.db.pool.query('update records set version = $1 where user_id = $2 and record_id = $3', [MAX, user, recordId]);
  expect((await storedRecord(ctx.db.pool, user, recordId)).version).toBe(MAX);
}

test('an update or delete of a record at version 2^31-1 is a version_exhausted conflict; the other changes apply', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('full', 0), put('fine', 0)] });
  await atMax(user, 'full');
  const { cursor } = await pullAll(ctx.sync, user, null);
  for (const change of [put('full', MAX), del('full', MAX)]) {
    const result = await ctx.sync.push(user, { changes: [change, put(`other-${change.deleted === true ? 'd' : 'u'}`, 0)], cursor: (await pullAll(ctx.sync, user, cursor)).cursor });
    expect(result.conflicts).toMatchObject([{ recordId: 'full', reason: 'version_exhausted', server: { version: MAX, deleted: false } }]);
    expect(result.applied).toHaveLength(1);
  }
  expect((await storedRecord(ctx.db.pool, user, 'full')).version).toBe(MAX);
  expect((await ctx.sync.push(user, { changes: [put('fine', 1)] })).applied).toEqual([{ recordId: 'fine', version: 2 }]);
});

test('in atomic mode it is a conflict like any other: nothing applies', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('full', 0)] });
  await atMax(user, 'full');
  const result = await ctx.sync.push(user, { atomic: true, changes: [put('new', 0), put('full', MAX)] });
  expect(result).toMatchObject({ applied: [], conflicts: [{ recordId: 'full', reason: 'version_exhausted' }] });
});

test('a create when the vault\'s version floor is at the top is a version_exhausted conflict with server null', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('x', 0)] });
  await atMax(user, 'x');
  // Deleting the row in SQL raises the floor to its version.
  await ctx.db.pool.query(`delete from records where user_id = $1 and record_id = 'x'`, [user]);
  const { cursor } = await pullAll(ctx.sync, user, null);
  const result = await ctx.sync.push(user, { changes: [put('x', 0), put('y', 0)], cursor });
  expect(result.conflicts).toEqual([
    { recordId: 'x', reason: 'version_exhausted', server: null },
    { recordId: 'y', reason: 'version_exhausted', server: null },
  ]);
});

test('a rotation over a record at the last version is refused naming it, and changes nothing', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('full', 0), put('fine', 0)] });
  await atMax(user, 'full');
  const error = await rejectionOf(ctx.sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: [
    { recordId: 'full', baseVersion: MAX, ciphertext: bytes() },
    { recordId: 'fine', baseVersion: 1, ciphertext: bytes() },
  ] }));
  expect(error).toBeInstanceOf(LimitExceededError);
  expect((error as LimitExceededError).recordId).toBe('full');
  expect((await ctx.sync.getVault(user))?.keyVersion).toBe(1);
});
