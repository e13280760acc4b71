/**
 * A push that writes nothing writes NOTHING (issue #9.3): an empty push, a push whose every change
 * conflicts, a re-sent push that had already applied, and an atomic push with a conflict send no
 * INSERT, UPDATE or DELETE, and leave every row of both tables byte-identical, the vault's feed
 * counters and timestamps included. Feed positions go only to rows that are written, so such a
 * push leaves no hole that would stop other devices' push cursors from advancing.
 */
import { describe, expect, test } from 'vitest';
import type { PushInput } from '../../src/sync/types.js';
import { del, newVault, pullAll, put, setupSyncDatabase, tableDigest } from './support/sync.js';
import { setupLoggedService, writeStatements } from './support/statement-log.js';

const ctx = setupSyncDatabase();
const logged = setupLoggedService(ctx);

/** A vault with live "a" (v1), "b" (v2) and a tombstone "t" (v2), and a cursor at its head. */
async function vault(): Promise<{ user: string; cursor: string; a: Buffer }> {
  const user = await newVault(ctx.sync);
  const a = put('a', 0);
  await ctx.sync.push(user, { changes: [a, put('b', 0), put('t', 0)] });
  await ctx.sync.push(user, { changes: [put('b', 1), del('t', 1)] });
  const { cursor } = await pullAll(ctx.sync, user, null);
  return { user, cursor, a: a.ciphertext };
}

/** Runs the push through the logged service and checks that it wrote nothing at all. */
async function expectNothingWritten(user: string, input: PushInput): Promise<Awaited<ReturnType<typeof ctx.sync.push>>> {
  const before = await tableDigest(ctx.db.pool);
  let result: Awaited<ReturnType<typeof ctx.sync.push>> | undefined;
  const statements = await logged.statementsOf(async () => {
    result = await logged.sync.push(user, input);
  });
  expect(writeStatements(statements), statements.join('\n')).toEqual([]);
  expect(await tableDigest(ctx.db.pool)).toEqual(before);
  return result as Awaited<ReturnType<typeof ctx.sync.push>>;
}

describe('pushes that write nothing send no write and change no byte of either table', () => {
  test('an empty push, with and without a cursor', async () => {
    const { user, cursor } = await vault();
    expect(await expectNothingWritten(user, { changes: [] })).toMatchObject({ applied: [], conflicts: [] });
    const result = await expectNothingWritten(user, { changes: [], cursor });
    expect(result.cursor).toBe(cursor);
  });

  test('a push whose every change conflicts (version_mismatch, gone, exists)', async () => {
    const { user, cursor } = await vault();
    const result = await expectNothingWritten(user, { changes: [put('a', 5), put('t', 1), put('b', 0), del('ghost', 3)], cursor });
    expect(result.conflicts.map((c) => [c.recordId, c.reason])).toEqual([
      ['a', 'version_mismatch'],
      ['t', 'gone'],
      ['b', 'exists'],
      ['ghost', 'gone'],
    ]);
    expect(result.cursor).toBe(cursor);
  });

  test('a re-sent push whose changes had all been applied', async () => {
    const { user } = await vault();
    const changes = [put('a', 1), del('b', 2), put('new', 0)];
    const first = await ctx.sync.push(user, { changes });
    const { cursor } = await pullAll(ctx.sync, user, null);
    const again = await expectNothingWritten(user, { changes, cursor });
    expect(again).toMatchObject({ applied: first.applied, conflicts: [] });
    expect(again.cursor).toBe(cursor);
  });

  test('an atomic push with a conflict, next to changes that would apply and one already applied', async () => {
    const { user, cursor, a } = await vault();
    const result = await expectNothingWritten(user, { atomic: true, changes: [put('new', 0), put('b', 1), put('a', 0, a), del('t', 2)], cursor });
    // Only what an earlier attempt had applied is reported; the rest comes back as conflicts.
    expect(result.applied).toEqual([{ recordId: 'a', version: 1 }]);
    expect(result.conflicts.map((c) => c.recordId)).toEqual(['b']);
    expect(result.cursor).toBe(cursor);
  });
});

test('feed positions go only to written rows: after other devices\' no-op pushes, an up-to-date push cursor still moves past its own changes', async () => {
  const { user, cursor } = await vault();
  // Another device's rejected atomic push and an all-conflict push.
  await ctx.sync.push(user, { atomic: true, changes: [put('x', 0), put('y', 0), put('a', 9)] });
  await ctx.sync.push(user, { changes: [put('a', 9), put('b', 9)] });
  // Nothing was committed after `cursor`, so this push's cursor moves past its own change...
  const mine = await ctx.sync.push(user, { changes: [put('mine', 0)], cursor });
  expect(mine.cursor).not.toBe(cursor);
  // ...and pulling from it returns nothing: the device is up to date without pulling its own change.
  expect(await ctx.sync.pull(user, { cursor: mine.cursor })).toMatchObject({ changes: [], hasMore: false });
  // The vault's head moved by exactly the one written row.
  const { rows } = await ctx.db.pool.query<{ last_seq: string }>('select last_seq from vaults where user_id = $1', [user]);
  const head = Buffer.from(mine.cursor, 'base64url').toString('utf8').split('.')[2];
  expect(rows[0]?.last_seq).toBe(head);
});
