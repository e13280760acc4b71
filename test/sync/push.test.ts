/**
 * push: versions, conflicts as data (with the server's state), default vs atomic mode. Every
 * outcome is checked against the rows in PostgreSQL, not only against the returned result.
 */
import { describe, expect, test } from 'vitest';
import { bytes, del, newVault, put, recordsDigest, setupSyncDatabase, storedRecord, storedRecords, tableDigest } from './support/sync.js';

const ctx = setupSyncDatabase();

describe('single changes', () => {
  test('a create (baseVersion 0) stores the record at version 1 with the pushed bytes', async () => {
    const user = await newVault(ctx.sync);
    const change = put('b1', 0);
    const result = await ctx.sync.push(user, { changes: [change] });
    expect(result.applied).toEqual([{ recordId: 'b1', version: 1 }]);
    expect(result.conflicts).toEqual([]);
    const row = await storedRecord(ctx.db.pool, user, 'b1');
    expect(row).toMatchObject({ version: 1, deleted: false });
    expect(row.ciphertext.equals(change.ciphertext)).toBe(true);
  });

  test('an update at the current version bumps the version and replaces the bytes', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('b1', 0)] });
    const second = put('b1', 1);
    expect((await ctx.sync.push(user, { changes: [second] })).applied).toEqual([{ recordId: 'b1', version: 2 }]);
    const third = put('b1', 2);
    expect((await ctx.sync.push(user, { changes: [third] })).applied).toEqual([{ recordId: 'b1', version: 3 }]);
    const row = await storedRecord(ctx.db.pool, user, 'b1');
    expect(row.version).toBe(3);
    expect(row.ciphertext.equals(third.ciphertext)).toBe(true);
  });

  test('a stale baseVersion is a version_mismatch conflict carrying the server version and bytes, and writes nothing', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('b1', 0)] });
    const current = put('b1', 1);
    await ctx.sync.push(user, { changes: [current] });
    const before = await recordsDigest(ctx.db.pool, user);

    const result = await ctx.sync.push(user, { changes: [put('b1', 1)] });
    expect(result.applied).toEqual([]);
    expect(result.conflicts).toHaveLength(1);
    const conflict = result.conflicts[0];
    expect(conflict).toMatchObject({ recordId: 'b1', reason: 'version_mismatch', server: { recordId: 'b1', version: 2, deleted: false } });
    // The device merges against exactly what the server holds.
    expect(conflict?.server?.ciphertext?.equals(current.ciphertext)).toBe(true);
    expect(conflict?.server?.updatedAt).toBeInstanceOf(Date);
    expect(await recordsDigest(ctx.db.pool, user)).toBe(before);
  });

  test('a baseVersion ahead of the server is a conflict too, never applied', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('b1', 0)] });
    const result = await ctx.sync.push(user, { changes: [put('b1', 5)] });
    expect(result.applied).toEqual([]);
    expect(result.conflicts).toMatchObject([{ recordId: 'b1', reason: 'version_mismatch', server: { version: 1 } }]);
  });

  test('a baseVersion > 0 for a record the server never had is "gone" with server null, and creates nothing', async () => {
    const user = await newVault(ctx.sync);
    const result = await ctx.sync.push(user, { changes: [put('ghost', 3)] });
    expect(result.applied).toEqual([]);
    expect(result.conflicts).toEqual([{ recordId: 'ghost', reason: 'gone', server: null }]);
    expect((await storedRecords(ctx.db.pool, user)).size).toBe(0);
  });

  test('a create (baseVersion 0) of an id that exists is "exists", with the existing record as server state', async () => {
    const user = await newVault(ctx.sync);
    const original = put('b1', 0);
    await ctx.sync.push(user, { changes: [original] });
    const result = await ctx.sync.push(user, { changes: [put('b1', 0)] });
    expect(result.applied).toEqual([]);
    expect(result.conflicts).toMatchObject([{ recordId: 'b1', reason: 'exists', server: { version: 1, deleted: false } }]);
    expect(result.conflicts[0]?.server?.ciphertext?.equals(original.ciphertext)).toBe(true);
    expect((await storedRecord(ctx.db.pool, user, 'b1')).ciphertext.equals(original.ciphertext)).toBe(true);
  });

  test('bytes come back as Buffers even when pushed as a plain Uint8Array view into a larger buffer', async () => {
    const user = await newVault(ctx.sync);
    const backing = bytes(64);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 8, 16);
    await ctx.sync.push(user, { changes: [{ recordId: 'v', baseVersion: 0, ciphertext: view }] });
    const row = await storedRecord(ctx.db.pool, user, 'v');
    // Only the view's 16 bytes are stored, not the whole backing buffer.
    expect(row.ciphertext.equals(Buffer.from(view))).toBe(true);
    const pulled = await ctx.sync.pull(user, {});
    expect(Buffer.isBuffer(pulled.changes[0]?.ciphertext)).toBe(true);
  });
});

describe('batches', () => {
  test('default mode applies every non-conflicting change and returns the conflicts with server state', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('keep', 0), put('stale', 0), put('taken', 0), put('bye', 0)] });
    await ctx.sync.push(user, { changes: [put('stale', 1)] });

    const fresh = put('fresh', 0);
    const update = put('keep', 1);
    const result = await ctx.sync.push(user, {
      changes: [fresh, put('stale', 1), update, put('ghost', 2), put('taken', 0), del('bye', 1)],
    });

    expect(result.applied).toEqual([
      { recordId: 'fresh', version: 1 },
      { recordId: 'keep', version: 2 },
      { recordId: 'bye', version: 2 },
    ]);
    expect(result.conflicts.map((c) => [c.recordId, c.reason, c.server?.version ?? null])).toEqual([
      ['stale', 'version_mismatch', 2],
      ['ghost', 'gone', null],
      ['taken', 'exists', 1],
    ]);

    const rows = await storedRecords(ctx.db.pool, user);
    expect(rows.get('fresh')?.ciphertext.equals(fresh.ciphertext)).toBe(true);
    expect(rows.get('keep')?.ciphertext.equals(update.ciphertext)).toBe(true);
    expect(rows.get('keep')?.version).toBe(2);
    expect(rows.get('bye')).toMatchObject({ version: 2, deleted: true, bytes: 0 });
    expect(rows.get('stale')?.version).toBe(2);
    expect(rows.get('taken')?.version).toBe(1);
    expect(rows.has('ghost')).toBe(false);
  });

  test('atomic mode: one conflict means no record of the push is written (checked in SQL)', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('x', 0)] });
    const before = await recordsDigest(ctx.db.pool, user);

    // Every change but the last would apply on its own: an update, a create, a delete.
    const result = await ctx.sync.push(user, { atomic: true, changes: [put('a', 1), put('new', 0), del('b', 1), put('x', 3)] });
    expect(result.applied).toEqual([]);
    expect(result.conflicts.map((c) => [c.recordId, c.reason, c.server?.version])).toEqual([['x', 'version_mismatch', 1]]);
    expect(await recordsDigest(ctx.db.pool, user)).toBe(before);
    expect([...(await storedRecords(ctx.db.pool, user)).keys()]).toEqual(['a', 'b', 'x']);

    // The same push in default mode applies the three good changes: atomic mode made the difference.
    const relaxed = await ctx.sync.push(user, { changes: [put('a', 1), put('new', 0), del('b', 1), put('x', 3)] });
    expect(relaxed.applied.map((a) => a.recordId)).toEqual(['a', 'new', 'b']);
  });

  test('atomic mode without conflicts applies everything', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('c', 0)] });
    const result = await ctx.sync.push(user, { atomic: true, changes: [put('a', 1), put('b', 0), del('c', 1)] });
    expect(result.applied).toEqual([
      { recordId: 'a', version: 2 },
      { recordId: 'b', version: 1 },
      { recordId: 'c', version: 2 },
    ]);
    expect(result.conflicts).toEqual([]);
    const rows = await storedRecords(ctx.db.pool, user);
    expect([...rows.values()].map((r) => [r.recordId, r.version, r.deleted])).toEqual([
      ['a', 2, false],
      ['b', 1, false],
      ['c', 2, true],
    ]);
  });

  test('an empty push changes no record and still returns a usable cursor', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    const before = await tableDigest(ctx.db.pool);
    const result = await ctx.sync.push(user, { changes: [] });
    expect(result).toMatchObject({ applied: [], conflicts: [] });
    expect((await tableDigest(ctx.db.pool)).records).toBe(before.records);
    // The device had sent no cursor, so it must still pull everything.
    expect((await ctx.sync.pull(user, { cursor: result.cursor })).changes.map((c) => c.recordId)).toEqual(['a']);
  });
});
