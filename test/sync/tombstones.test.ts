/**
 * Deletes are tombstones: the version moves on, the ciphertext is erased from the database, and
 * every device learns of the delete. Purging tombstones must never let a device silently miss one.
 */
import { describe, expect, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig } from '../../src/config.js';
import { ResyncRequiredError } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { del, newVault, pullAll, put, rejectionOf, setupSyncDatabase, storedRecord, storedRecords } from './support/sync.js';

const ctx = setupSyncDatabase();
const FUTURE = () => new Date(Date.now() + 60_000);

describe('delete', () => {
  test('a delete bumps the version, sets deleted, and erases the ciphertext in the database', async () => {
    const user = await newVault(ctx.sync);
    const original = put('a', 0);
    await ctx.sync.push(user, { changes: [original] });
    const result = await ctx.sync.push(user, { changes: [del('a', 1)] });
    expect(result).toMatchObject({ applied: [{ recordId: 'a', version: 2 }], conflicts: [] });

    const row = await storedRecord(ctx.db.pool, user, 'a');
    expect(row).toMatchObject({ version: 2, deleted: true, bytes: 0 });
    // Not one byte of the deleted bookmark is left in the row.
    expect(row.ciphertext.includes(Buffer.from(original.ciphertext.subarray(0, 8)))).toBe(false);
  });

  test('pulls return the tombstone with ciphertext null, and so do conflicts', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    const { cursor } = await ctx.sync.pull(user, {});
    await ctx.sync.push(user, { changes: [del('a', 1)] });

    const pulled = await ctx.sync.pull(user, { cursor });
    expect(pulled.changes).toMatchObject([{ recordId: 'a', version: 2, deleted: true, ciphertext: null }]);
    // A device that edited the record meanwhile learns it is gone, with the tombstone as state.
    const stale = await ctx.sync.push(user, { changes: [put('a', 1)] });
    expect(stale.conflicts).toMatchObject([{ recordId: 'a', reason: 'gone', server: { version: 2, deleted: true, ciphertext: null } }]);
  });

  test('a delete at a stale version is a version_mismatch conflict, and the record stays live', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    await ctx.sync.push(user, { changes: [put('a', 1)] });
    const result = await ctx.sync.push(user, { changes: [del('a', 1)] });
    expect(result.conflicts).toMatchObject([{ recordId: 'a', reason: 'version_mismatch', server: { version: 2, deleted: false } }]);
    expect(await storedRecord(ctx.db.pool, user, 'a')).toMatchObject({ version: 2, deleted: false });
  });

  test('writing with ciphertext at the tombstone\'s current version brings the record back', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    await ctx.sync.push(user, { changes: [del('a', 1)] });
    const revived = put('a', 2);
    const result = await ctx.sync.push(user, { changes: [revived] });
    expect(result).toMatchObject({ applied: [{ recordId: 'a', version: 3 }], conflicts: [] });
    const row = await storedRecord(ctx.db.pool, user, 'a');
    expect(row).toMatchObject({ version: 3, deleted: false });
    expect(row.ciphertext.equals(revived.ciphertext)).toBe(true);
    expect((await ctx.sync.pull(user, {})).changes).toMatchObject([{ recordId: 'a', version: 3, deleted: false }]);
  });

  test('a delete of a record this device created but never pushed (baseVersion 0) does not fail the push', async () => {
    const user = await newVault(ctx.sync);
    const sibling = put('sibling', 0);
    // BUG (src/sync/sync-service.ts, push, the `else` branch of `writes`): a delete with no
    // record and baseVersion 0 is judged 'write' and persisted as `new VaultRecord(..., EMPTY, ...)`
    // with `deleted` left false, which breaks the records_tombstone_is_empty check; the whole push
    // (the sibling change too) then fails with a DatabaseError.
    const result = await ctx.sync.push(user, { changes: [sibling, del('never-pushed', 0)] });
    expect(result.applied).toContainEqual({ recordId: 'sibling', version: 1 });
    // Either outcome is coherent: a tombstone at version 1, or a 'gone' conflict; never a live record.
    const rows = await storedRecords(ctx.db.pool, user);
    const ghost = rows.get('never-pushed');
    if (ghost) expect(ghost).toMatchObject({ version: 1, deleted: true, bytes: 0 });
    else expect(result.conflicts).toEqual([{ recordId: 'never-pushed', reason: 'gone', server: null }]);
  });

  test('a delete of an unknown record at baseVersion > 0 is "gone" with server null', async () => {
    const user = await newVault(ctx.sync);
    const result = await ctx.sync.push(user, { changes: [del('ghost', 4)] });
    expect(result).toMatchObject({ applied: [], conflicts: [{ recordId: 'ghost', reason: 'gone', server: null }] });
    expect((await storedRecords(ctx.db.pool, user)).size).toBe(0);
  });
});

describe('purgeTombstones', () => {
  /** A vault where "gone" was deleted, with cursors from before and after the delete was seen. */
  async function vaultWithDelete(): Promise<{ user: string; before: string; after: string }> {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('keep', 0), put('gone', 0)] });
    const before = (await ctx.sync.pull(user, {})).cursor;
    await ctx.sync.push(user, { changes: [del('gone', 1)] });
    const after = (await ctx.sync.pull(user, { cursor: before })).cursor;
    return { user, before, after };
  }

  test('removes the tombstone row; a cursor that had not seen it must resync, one that had still works', async () => {
    const { user, before, after } = await vaultWithDelete();
    expect(await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user })).toEqual({ purged: 1, vaults: 1, skipped: [] });
    expect((await storedRecords(ctx.db.pool, user)).has('gone')).toBe(false);

    // The stale device would otherwise never hear of the delete and keep "gone" forever.
    const error = await rejectionOf(ctx.sync.pull(user, { cursor: before }));
    expect(error).toBeInstanceOf(ResyncRequiredError);
    expect(error).toMatchObject({ code: 'resync_required' });

    const current = await ctx.sync.pull(user, { cursor: after });
    expect(current).toMatchObject({ changes: [], hasMore: false });
    await ctx.sync.push(user, { changes: [put('later', 0)], cursor: after });
    expect((await ctx.sync.pull(user, { cursor: after })).changes.map((c) => c.recordId)).toEqual(['later']);

    // A full pull always works, and shows no trace of the purged record.
    expect((await pullAll(ctx.sync, user, null)).changes.map((c) => c.recordId)).toEqual(['keep', 'later']);
  });

  test('purges only tombstones older than olderThan, and then no cursor needs a resync', async () => {
    const { user, before } = await vaultWithDelete();
    expect(await ctx.sync.purgeTombstones({ olderThan: new Date(Date.now() - 60_000), userId: user })).toEqual({ purged: 0, vaults: 1, skipped: [] });
    expect((await storedRecords(ctx.db.pool, user)).get('gone')).toMatchObject({ deleted: true });
    expect((await ctx.sync.pull(user, { cursor: before })).changes.map((c) => c.recordId)).toEqual(['gone']);
  });

  test('never purges live records, and without userId purges every vault', async () => {
    const first = await vaultWithDelete();
    const second = await vaultWithDelete();
    // Purging every vault reads all vaults, so it runs as the owner (under row-level security the
    // application role sees none); see the README's Neon section.
    const owner = await MikroORM.init(createConfig(ctx.db.url));
    try {
      const { purged, vaults, skipped } = await new SyncService(owner.em).purgeTombstones({ olderThan: FUTURE() });
      expect(purged).toBeGreaterThanOrEqual(2);
      expect(vaults).toBeGreaterThanOrEqual(2);
      expect(skipped).toEqual([]);
    } finally {
      await owner.close(true);
    }
    for (const { user } of [first, second]) {
      const rows = await storedRecords(ctx.db.pool, user);
      expect([...rows.keys()]).toEqual(['keep']);
      expect(rows.get('keep')?.deleted).toBe(false);
    }
  });

  test('a record purged and then pushed at its old version by a device that pulled since is "gone"; re-creating it starts above every purged version', async () => {
    const { user } = await vaultWithDelete();
    await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user });
    const { cursor } = await pullAll(ctx.sync, user, null);
    const stale = await ctx.sync.push(user, { changes: [put('gone', 1)], cursor });
    expect(stale.conflicts).toEqual([{ recordId: 'gone', reason: 'gone', server: null }]);
    // The purged tombstone was at version 2: the id never goes back to 1 or 2.
    expect((await ctx.sync.push(user, { changes: [put('gone', 0)], cursor })).applied).toEqual([{ recordId: 'gone', version: 3 }]);
  });

  test('after a purge, a push without a cursor, or with one older than the purge, must resync first', async () => {
    const { user, before } = await vaultWithDelete();
    await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user });
    expect(await rejectionOf(ctx.sync.push(user, { changes: [put('new', 0)] }))).toBeInstanceOf(ResyncRequiredError);
    expect(await rejectionOf(ctx.sync.push(user, { changes: [put('new', 0)], cursor: before }))).toBeInstanceOf(ResyncRequiredError);
    expect((await storedRecords(ctx.db.pool, user)).has('new')).toBe(false);
  });
});

describe('a full resync after a purge pages through the whole vault', () => {
  test('after purgeTombstones: a full pull in small pages completes, and its cursors stay valid', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: Array.from({ length: 8 }, (_, i) => put(`r${i}`, 0)) });
    await ctx.sync.push(user, { changes: [del('r7', 1)] });
    await ctx.sync.push(user, { changes: [put('later', 0)] });
    await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user });
    // The purge horizon (the tombstone's position) lies above the first pages of the resync.
    const full = await pullAll(ctx.sync, user, null, { limit: 2 });
    expect(full.changes.map((c) => c.recordId)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'later']);
    expect(full.pageSizes.length).toBeGreaterThan(2);
    // And the cursor of a page in the middle can push and pull on.
    const first = await ctx.sync.pull(user, { limit: 2 });
    expect((await ctx.sync.push(user, { changes: [put('new', 0)], cursor: first.cursor })).cursor).toBe(first.cursor);
  });

  test('but a record the resync already returned, deleted and purged before the resync ends, makes it start over', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: Array.from({ length: 6 }, (_, i) => put(`r${i}`, 0)) });
    await ctx.sync.push(user, { changes: [del('r5', 1)] });
    await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user });
    const page = await ctx.sync.pull(user, { limit: 2 });
    expect(page.changes.map((c) => c.recordId)).toEqual(['r0', 'r1']);
    // The device holds r1; r1 is deleted and its tombstone purged before the device pulls on.
    await ctx.sync.push(user, { changes: [del('r1', 1)], cursor: page.cursor });
    await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user });
    expect(await rejectionOf(ctx.sync.pull(user, { cursor: page.cursor, limit: 2 }))).toBeInstanceOf(ResyncRequiredError);
    expect(await rejectionOf(ctx.sync.push(user, { changes: [put('r1', 1)], cursor: page.cursor }))).toBeInstanceOf(ResyncRequiredError);
  });
});
