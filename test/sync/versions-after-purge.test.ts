/**
 * Versions of a record id are never reused within a vault, whatever was purged (issue #12.1).
 *
 * The vault keeps a version floor (`vaults.version_floor`, raised by the database whenever record
 * rows are deleted) and new records start above it; and a device whose cursor predates the purge
 * horizon (or that has no cursor) must resync before it may push. So a device that remembers a
 * purged record can neither overwrite a new record of the same id nor bring the deleted one back.
 */
import { describe, expect, test } from 'vitest';
import { ResyncRequiredError } from '../../src/errors.js';
import { bytes, del, newVault, pullAll, put, rejectionOf, setupSyncDatabase, storedRecord, storedRecords, tableDigest } from './support/sync.js';

const ctx = setupSyncDatabase();
const FUTURE = () => new Date(Date.now() + 60_000);

async function purge(user: string): Promise<void> {
  expect((await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user })).purged).toBeGreaterThan(0);
}

describe('laptop, phone and tablet: a stale device never overwrites a different record of the same id', () => {
  /**
   * The laptop creates "bm" (v1) and goes offline; the phone deletes it (v2); the tombstone is
   * purged; the tablet creates a new "bm" with other content. Returns the laptop's old cursor.
   */
  async function scenario(): Promise<{ user: string; laptopCursor: string; tablet: Buffer; tabletVersion: number }> {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('bm', 0), put('other', 0)] });
    const laptopCursor = (await pullAll(ctx.sync, user, null)).cursor;

    const phone = await pullAll(ctx.sync, user, null);
    await ctx.sync.push(user, { changes: [del('bm', 1)], cursor: phone.cursor });
    await purge(user);

    const tabletView = await pullAll(ctx.sync, user, null);
    const tablet = bytes();
    const created = await ctx.sync.push(user, { changes: [put('bm', 0, tablet)], cursor: tabletView.cursor });
    const tabletVersion = created.applied[0]?.version as number;
    // Never version 1 again: the purged tombstone was at 2, so the new record starts at 3.
    expect(created.applied).toEqual([{ recordId: 'bm', version: 3 }]);
    return { user, laptopCursor, tablet, tabletVersion };
  }

  test.each([
    ['with its old cursor', true],
    ['without a cursor', false],
  ])('the laptop pushing its edit at baseVersion 1 %s must resync, and the tablet\'s bookmark stays', async (_name, withCursor) => {
    const { user, laptopCursor, tablet } = await scenario();
    const before = await tableDigest(ctx.db.pool);
    const edit = put('bm', 1);
    const error = await rejectionOf(ctx.sync.push(user, { changes: [edit], ...(withCursor ? { cursor: laptopCursor } : {}) }));
    expect(error).toBeInstanceOf(ResyncRequiredError);
    expect(await tableDigest(ctx.db.pool)).toEqual(before);
    expect((await storedRecord(ctx.db.pool, user, 'bm')).ciphertext.equals(tablet)).toBe(true);
  });

  test('after resyncing, the laptop\'s edit at baseVersion 1 is a conflict with the tablet\'s record, never an overwrite', async () => {
    const { user, tablet, tabletVersion } = await scenario();
    const resynced = await pullAll(ctx.sync, user, null);
    expect(resynced.changes.find((c) => c.recordId === 'bm')).toMatchObject({ version: tabletVersion, deleted: false });
    const result = await ctx.sync.push(user, { changes: [put('bm', 1)], cursor: resynced.cursor });
    expect(result.applied).toEqual([]);
    expect(result.conflicts).toMatchObject([{ recordId: 'bm', reason: 'version_mismatch', server: { version: tabletVersion } }]);
    expect((await storedRecord(ctx.db.pool, user, 'bm')).ciphertext.equals(tablet)).toBe(true);
  });
});

describe('a create whose response was lost, re-sent after a delete and a purge, does not bring the bookmark back', () => {
  async function scenario(): Promise<{ user: string; cursor: string; create: ReturnType<typeof put> }> {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('keep', 0)] });
    const cursor = (await pullAll(ctx.sync, user, null)).cursor;
    const create = put('bm', 0);
    await ctx.sync.push(user, { changes: [create], cursor }); // the response is lost
    const phone = await pullAll(ctx.sync, user, null);
    await ctx.sync.push(user, { changes: [del('bm', 1)], cursor: phone.cursor });
    await purge(user);
    return { user, cursor, create };
  }

  test.each([
    ['with the cursor it sent the first time', true],
    ['without a cursor', false],
  ])('the re-sent create %s must resync, and nothing is written', async (_name, withCursor) => {
    const { user, cursor, create } = await scenario();
    const before = await tableDigest(ctx.db.pool);
    const error = await rejectionOf(ctx.sync.push(user, { changes: [create], ...(withCursor ? { cursor } : {}) }));
    expect(error).toBeInstanceOf(ResyncRequiredError);
    expect(await tableDigest(ctx.db.pool)).toEqual(before);
    expect((await storedRecords(ctx.db.pool, user)).has('bm')).toBe(false);
  });
});

test('the version floor covers the whole vault and keeps rising: every record created after a purge starts above every purged version', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  let view = await pullAll(ctx.sync, user, null);
  for (let v = 1; v < 5; v++) await ctx.sync.push(user, { changes: [put('a', v)], cursor: (view = await pullAll(ctx.sync, user, view.cursor)).cursor });
  await ctx.sync.push(user, { changes: [del('a', 5)], cursor: (await pullAll(ctx.sync, user, view.cursor)).cursor });
  await purge(user);
  view = await pullAll(ctx.sync, user, null);
  // "a" was purged at version 6: any new record, of any id, starts at 7.
  const created = await ctx.sync.push(user, { changes: [put('a', 0), put('fresh', 0)], cursor: view.cursor });
  expect(created.applied).toEqual([
    { recordId: 'a', version: 7 },
    { recordId: 'fresh', version: 7 },
  ]);
  // A record that was never deleted keeps its own versions.
  expect((await storedRecord(ctx.db.pool, user, 'b')).version).toBe(1);
  const { rows } = await ctx.db.pool.query<{ version_floor: number }>('select version_floor from vaults where user_id = $1', [user]);
  expect(rows[0]?.version_floor).toBe(6);
});

test('a re-sent create is still recognised as applied after the floor moved (no false "exists" conflict)', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('x', 0)] });
  await ctx.sync.push(user, { changes: [del('x', 1)] });
  await purge(user);
  const view = await pullAll(ctx.sync, user, null);
  const create = put('bm', 0);
  const first = await ctx.sync.push(user, { changes: [create], cursor: view.cursor });
  expect(first.applied).toEqual([{ recordId: 'bm', version: 3 }]);
  const again = await ctx.sync.push(user, { changes: [create], cursor: view.cursor });
  expect(again).toMatchObject({ applied: [{ recordId: 'bm', version: 3 }], conflicts: [] });
});
