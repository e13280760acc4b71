/**
 * A device whose response was lost re-sends the same push. It must get success for what already
 * applied (same versions), no conflicts, and no second application: the records table is
 * byte-for-byte unchanged by the retry.
 */
import { expect, test } from 'vitest';
import type { Change } from '../../src/sync/types.js';
import { del, newVault, put, recordsDigest, setupSyncDatabase, storedRecords } from './support/sync.js';

const ctx = setupSyncDatabase();

/** A vault with records e1..e3 at version 1, and a push that creates, updates and deletes. */
async function vaultAndMixedPush(): Promise<{ user: string; changes: Change[] }> {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('e1', 0), put('e2', 0), put('e3', 0)] });
  return { user, changes: [put('n1', 0), put('e1', 1), del('e2', 1), put('n2', 0)] };
}

for (const atomic of [false, true]) {
  test(`re-sending the same push (atomic: ${atomic}) returns the same versions, no conflicts, and changes no row`, async () => {
    const { user, changes } = await vaultAndMixedPush();
    const first = await ctx.sync.push(user, { changes, atomic });
    expect(first.conflicts).toEqual([]);
    expect(first.applied).toEqual([
      { recordId: 'n1', version: 1 },
      { recordId: 'e1', version: 2 },
      { recordId: 'e2', version: 2 },
      { recordId: 'n2', version: 1 },
    ]);
    const afterFirst = await recordsDigest(ctx.db.pool, user);
    const rowsAfterFirst = await storedRecords(ctx.db.pool, user);

    // The response was "lost": the device sends the very same push, twice for good measure.
    for (let retry = 0; retry < 2; retry++) {
      const again = await ctx.sync.push(user, { changes, atomic });
      expect(again.applied).toEqual(first.applied);
      expect(again.conflicts).toEqual([]);
    }
    // Versions, feed positions (seq), row count, bytes and timestamps are all untouched.
    expect(await recordsDigest(ctx.db.pool, user)).toBe(afterFirst);
    expect(await storedRecords(ctx.db.pool, user)).toEqual(rowsAfterFirst);
    // A full pull shows each record once, at the version of the first push.
    const pulled = await ctx.sync.pull(user, {});
    expect(pulled.changes.map((c) => [c.recordId, c.version]).sort()).toEqual([
      ['e1', 2],
      ['e2', 2],
      ['e3', 1],
      ['n1', 1],
      ['n2', 1],
    ]);
  });
}

test('a retry of a push that partly conflicted gets the same applied versions and the same conflicts', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  await ctx.sync.push(user, { changes: [put('b', 1)] });
  const changes = [put('a', 1), put('b', 1), put('c', 0)];
  const first = await ctx.sync.push(user, { changes });
  const digest = await recordsDigest(ctx.db.pool, user);
  const again = await ctx.sync.push(user, { changes });
  expect(again.applied).toEqual(first.applied);
  expect(again.conflicts).toEqual(first.conflicts);
  expect(await recordsDigest(ctx.db.pool, user)).toBe(digest);
});

test('in atomic mode, a retry mixing already-applied changes with a new conflict writes nothing and reports only the real conflict', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  const applied = put('a', 1);
  await ctx.sync.push(user, { changes: [applied] });
  const digest = await recordsDigest(ctx.db.pool, user);
  // "a" already applied (a retry), "b" is stale: the push is rejected as a whole...
  const result = await ctx.sync.push(user, { atomic: true, changes: [applied, put('b', 3)] });
  expect(result.conflicts.map((c) => [c.recordId, c.reason])).toEqual([['b', 'version_mismatch']]);
  // ...but "a" is not reported as a conflict: it is stored, and reported at its version.
  expect(result.applied).toEqual([{ recordId: 'a', version: 2 }]);
  expect(await recordsDigest(ctx.db.pool, user)).toBe(digest);
});

test('a retry after another device moved the record on is a conflict, not a silent success or a second write', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0)] });
  const mine = put('a', 1);
  await ctx.sync.push(user, { changes: [mine] });
  const theirs = put('a', 2);
  await ctx.sync.push(user, { changes: [theirs] });

  const retry = await ctx.sync.push(user, { changes: [mine] });
  expect(retry.applied).toEqual([]);
  expect(retry.conflicts).toMatchObject([{ recordId: 'a', reason: 'version_mismatch', server: { version: 3 } }]);
  expect(retry.conflicts[0]?.server?.ciphertext?.equals(theirs.ciphertext)).toBe(true);
});

test('a create with different bytes from the stored one is "exists", not a retry', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0)] });
  const other = await ctx.sync.push(user, { changes: [put('a', 0)] });
  expect(other.conflicts.map((c) => c.reason)).toEqual(['exists']);
});

test('a retried delete whose tombstone was revived since is a conflict', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0)] });
  await ctx.sync.push(user, { changes: [del('a', 1)] });
  await ctx.sync.push(user, { changes: [put('a', 2)] });
  const retry = await ctx.sync.push(user, { changes: [del('a', 1)] });
  expect(retry.applied).toEqual([]);
  expect(retry.conflicts).toMatchObject([{ recordId: 'a', reason: 'version_mismatch', server: { version: 3, deleted: false } }]);
});

test('a retried update whose record was deleted since is "gone" with the tombstone', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0)] });
  const update = put('a', 1);
  await ctx.sync.push(user, { changes: [update] });
  await ctx.sync.push(user, { changes: [del('a', 2)] });
  const retry = await ctx.sync.push(user, { changes: [update] });
  expect(retry.conflicts).toEqual([{ recordId: 'a', reason: 'gone', server: expect.objectContaining({ version: 3, deleted: true, ciphertext: null }) }]);
});
