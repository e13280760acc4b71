/**
 * pull: a full sync, incremental pulls from a cursor, and paging by `limit` and `maxBytes`. The
 * invariant behind every paging test: draining the feed page by page returns exactly what one
 * big pull returns, and `hasMore` is false only when nothing is left.
 */
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import type { RecordState } from '../../src/sync/types.js';
import { bytes, del, newVault, pullAll, put, setupSyncDatabase, storedRecords, summary } from './support/sync.js';

const ctx = setupSyncDatabase();

/** Pushes records of the given sizes, one push each, named r0, r1, ... in feed order. */
async function vaultWithSizes(sizes: number[]): Promise<string> {
  const user = await newVault(ctx.sync);
  for (const [i, size] of sizes.entries()) await ctx.sync.push(user, { changes: [put(`r${i}`, 0, bytes(size))] });
  return user;
}

describe('full and incremental pulls', () => {
  test('a full sync (cursor null) returns every record once, tombstones included, in the order of their last write', async () => {
    const user = await newVault(ctx.sync);
    const a1 = put('a', 0);
    await ctx.sync.push(user, { changes: [a1, put('b', 0)] });
    await ctx.sync.push(user, { changes: [put('c', 0)] });
    const a2 = put('a', 1);
    await ctx.sync.push(user, { changes: [a2] });
    await ctx.sync.push(user, { changes: [del('b', 1)] });

    const full = await ctx.sync.pull(user, { cursor: null });
    expect(full.hasMore).toBe(false);
    // "a" was written after "c", and "b" (deleted) last: the feed follows commit order.
    expect(full.changes.map((c) => [c.recordId, c.version, c.deleted])).toEqual([
      ['c', 1, false],
      ['a', 2, false],
      ['b', 2, true],
    ]);
    expect(full.changes[1]?.ciphertext?.equals(a2.ciphertext)).toBe(true);
    expect(full.changes[2]?.ciphertext).toBeNull();
    // Omitting the cursor is the same as null.
    expect((await ctx.sync.pull(user)).changes.map(summary)).toEqual(full.changes.map(summary));
  });

  test('an incremental pull returns only what changed after the cursor, each record once at its latest state', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0)] });
    const { cursor } = await ctx.sync.pull(user, {});

    await ctx.sync.push(user, { changes: [put('a', 1)] });
    await ctx.sync.push(user, { changes: [put('a', 2), del('c', 1)] });
    const a4 = put('a', 3);
    await ctx.sync.push(user, { changes: [a4] });

    const next = await ctx.sync.pull(user, { cursor });
    expect(next.changes.map((c) => [c.recordId, c.version, c.deleted])).toEqual([
      ['c', 2, true],
      ['a', 4, false],
    ]);
    expect(next.changes[1]?.ciphertext?.equals(a4.ciphertext)).toBe(true);
    expect(next.hasMore).toBe(false);
    // Nothing new: the next pull is empty and keeps the cursor usable.
    const empty = await ctx.sync.pull(user, { cursor: next.cursor });
    expect(empty).toMatchObject({ changes: [], hasMore: false });
    expect((await ctx.sync.pull(user, { cursor: empty.cursor })).changes).toEqual([]);
  });

  test('pulled changes carry updatedAt as a Date equal to the stored updated_at, as conflicts do', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
    await ctx.sync.push(user, { changes: [del('b', 1)] });
    const { rows } = await ctx.db.pool.query<{ record_id: string; updated_at: Date }>('select record_id, updated_at from records where user_id = $1', [user]);
    const stored = new Map(rows.map((r) => [r.record_id, r.updated_at.getTime()]));
    const pulled = await ctx.sync.pull(user, {});
    expect(pulled.changes).toHaveLength(2);
    for (const change of pulled.changes) {
      // BUG (src/sync/feed.ts, readFeedPage): the raw query's timestamptz arrives as a string
      // (MikroORM's pg driver does not parse dates) and is passed through as `updatedAt`.
      expect(change.updatedAt).toBeInstanceOf(Date);
      expect(new Date(change.updatedAt).getTime()).toBe(stored.get(change.recordId));
    }
    // The conflict path builds RecordState from the entity: the same field must have the same type.
    const conflict = (await ctx.sync.push(user, { changes: [put('a', 0)] })).conflicts[0];
    expect(conflict?.server?.updatedAt).toBeInstanceOf(Date);
  });

  test('an empty vault pulls nothing, and its cursor later returns exactly the first changes', async () => {
    const user = await newVault(ctx.sync);
    const first = await ctx.sync.pull(user, {});
    expect(first).toMatchObject({ changes: [], hasMore: false });
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    expect((await ctx.sync.pull(user, { cursor: first.cursor })).changes.map((c) => c.recordId)).toEqual(['a']);
  });

  test('the feed matches the database: every row once, at its stored version, live rows with their bytes', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: Array.from({ length: 12 }, (_, i) => put(`r${i}`, 0)) });
    await ctx.sync.push(user, { changes: [put('r3', 1), del('r4', 1), put('r5', 1)] });
    const pulled = await pullAll(ctx.sync, user, null, { limit: 5 });
    const rows = await storedRecords(ctx.db.pool, user);
    expect(pulled.changes.map((c) => c.recordId).sort()).toEqual([...rows.keys()].sort());
    for (const change of pulled.changes) {
      const row = rows.get(change.recordId);
      expect(change.version).toBe(row?.version);
      expect(change.deleted).toBe(row?.deleted);
      if (!change.deleted) expect(change.ciphertext?.equals(row?.ciphertext as Buffer)).toBe(true);
    }
  });
});

describe('paging', () => {
  test('by limit: pages of at most `limit`, hasMore until the last, and the pages add up to the full pull', async () => {
    const user = await vaultWithSizes([10, 10, 10, 10, 10, 10, 10]);
    const full = await ctx.sync.pull(user, {});
    expect(full.changes).toHaveLength(7);

    const first = await ctx.sync.pull(user, { limit: 3 });
    expect(first.changes).toHaveLength(3);
    expect(first.hasMore).toBe(true);
    const drained = await pullAll(ctx.sync, user, null, { limit: 3 });
    expect(drained.pageSizes).toEqual([3, 3, 1]);
    expect(drained.changes.map(summary)).toEqual(full.changes.map(summary));
    // A limit that exactly matches what is left ends the feed on that page.
    expect((await pullAll(ctx.sync, user, null, { limit: 7 })).pageSizes).toEqual([7]);
  });

  test('by maxBytes: each page stays within the byte budget, and the pages add up to the full pull', async () => {
    const user = await vaultWithSizes([40, 40, 40, 40, 40]);
    const full = await ctx.sync.pull(user, {});
    const drained = await pullAll(ctx.sync, user, null, { maxBytes: 100 });
    // 40 + 40 fits in 100; a third record would make 120.
    expect(drained.pageSizes).toEqual([2, 2, 1]);
    expect(drained.changes.map(summary)).toEqual(full.changes.map(summary));
    // A budget that is met exactly still fits.
    expect((await pullAll(ctx.sync, user, null, { maxBytes: 80 })).pageSizes).toEqual([2, 2, 1]);
  });

  test('tombstones cost no bytes: a page of deletions is limited by count only', async () => {
    const user = await vaultWithSizes([50, 50, 50, 50]);
    await ctx.sync.push(user, { changes: [del('r0', 1), del('r1', 1), del('r2', 1), del('r3', 1)] });
    const page = await ctx.sync.pull(user, { maxBytes: 1, limit: 10 });
    expect(page.changes).toHaveLength(4);
    expect(page.hasMore).toBe(false);
  });

  test('a change bigger than maxBytes on its own is still returned, and the feed goes on after it', async () => {
    const user = await vaultWithSizes([500, 10, 10]);
    const page = await ctx.sync.pull(user, { maxBytes: 100 });
    // At least one change per page, or a big record would block the feed forever.
    expect(page.changes.map((c) => c.recordId)).toEqual(['r0']);
    // BUG (src/sync/feed.ts, pageSql): the look-ahead row r1 starts at byte 500 > maxBytes, so the
    // outer filter drops it and readFeedPage reports hasMore false; pull then returns the vault
    // head as cursor and r1, r2 are skipped for good.
    expect(page.hasMore).toBe(true);
    const rest = await ctx.sync.pull(user, { cursor: page.cursor, maxBytes: 100 });
    expect(rest.changes.map((c) => c.recordId)).toEqual(['r1', 'r2']);
  });

  test('a big change in the middle of the feed gets a page of its own, and nothing after it is skipped', async () => {
    const user = await vaultWithSizes([10, 10, 500, 10, 10]);
    const full = await ctx.sync.pull(user, {});
    const drained = await pullAll(ctx.sync, user, null, { maxBytes: 100 });
    expect(drained.changes.map(summary)).toEqual(full.changes.map(summary));
    expect(drained.pageSizes).toEqual([2, 1, 2]);
  });

  test('property: for any record sizes, limit and maxBytes, the pages add up to the full pull and respect both bounds', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 0, maxLength: 10 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 400 }),
        async (sizes, limit, maxBytes) => {
          const vault = await vaultWithSizes(sizes);
          const full = await ctx.sync.pull(vault, {});
          const pages: { count: number; bytes: number; hasMore: boolean }[] = [];
          let cursor: string | null = null;
          const changes: RecordState[] = [];
          for (let i = 0; i <= sizes.length + 1; i++) {
            const page = await ctx.sync.pull(vault, { cursor, limit, maxBytes });
            changes.push(...page.changes);
            pages.push({ count: page.changes.length, bytes: page.changes.reduce((n, c) => n + (c.ciphertext?.length ?? 0), 0), hasMore: page.hasMore });
            cursor = page.cursor;
            if (!page.hasMore) break;
          }
          expect(changes.map(summary)).toEqual(full.changes.map(summary));
          for (const page of pages) {
            expect(page.count).toBeLessThanOrEqual(limit);
            if (page.count > 1) expect(page.bytes).toBeLessThanOrEqual(maxBytes);
          }
          expect(pages.at(-1)?.hasMore).toBe(false);
        },
      ),
      { numRuns: 20 },
    );
  });

  test('the cursor after the last page, plus new pushes, returns exactly the new changes', async () => {
    const user = await vaultWithSizes([10, 10, 10, 10]);
    const drained = await pullAll(ctx.sync, user, null, { limit: 3 });
    const fresh = put('new', 0);
    await ctx.sync.push(user, { changes: [fresh, put('r1', 1)] });
    const next = await ctx.sync.pull(user, { cursor: drained.cursor });
    expect(next.changes.map((c) => [c.recordId, c.version])).toEqual([
      ['new', 1],
      ['r1', 2],
    ]);
    expect(next.changes[0]?.ciphertext?.equals(fresh.ciphertext)).toBe(true);
    expect(next.hasMore).toBe(false);
  });

  test('a record updated between two pages is not lost: it comes back on a later page at its new version', async () => {
    const user = await vaultWithSizes([10, 10, 10, 10]);
    const first = await ctx.sync.pull(user, { limit: 2 });
    expect(first.changes.map((c) => c.recordId)).toEqual(['r0', 'r1']);
    // r0 was already paged out and r3 not yet: update both.
    await ctx.sync.push(user, { changes: [put('r0', 1), put('r3', 1)] });
    const rest = await pullAll(ctx.sync, user, first.cursor, { limit: 2 });
    expect(rest.changes.map((c) => [c.recordId, c.version])).toEqual([
      ['r2', 1],
      ['r0', 2],
      ['r3', 2],
    ]);
  });
});
