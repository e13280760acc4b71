/**
 * The cursor a push returns is always safe to adopt: it moves past the push's own changes only
 * when the device had already seen everything before them; otherwise it stays where the device
 * was, so the next pull brings the other devices' changes (and this push's own, harmlessly).
 */
import { expect, test } from 'vitest';
import { del, newVault, pullAll, put, setupSyncDatabase } from './support/sync.js';

const ctx = setupSyncDatabase();

test('with an up-to-date cursor, the push cursor is past its own changes: the next pull is empty', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  const { cursor } = await ctx.sync.pull(user, {});

  const result = await ctx.sync.push(user, { changes: [put('a', 1), put('c', 0), del('b', 1)], cursor });
  expect(result.cursor).not.toBe(cursor);
  const next = await ctx.sync.pull(user, { cursor: result.cursor });
  expect(next).toMatchObject({ changes: [], hasMore: false });

  // And it keeps working: the next change by anyone shows up, and only that.
  await ctx.sync.push(user, { changes: [put('d', 0)] });
  expect((await ctx.sync.pull(user, { cursor: result.cursor })).changes.map((c) => c.recordId)).toEqual(['d']);
});

test('when another device committed after the cursor, the push cursor is the device\'s own cursor, and the next pull brings both', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0)] });
  const { cursor } = await ctx.sync.pull(user, {});

  await ctx.sync.push(user, { changes: [put('other', 0)] }); // device B
  const result = await ctx.sync.push(user, { changes: [put('mine', 0)], cursor }); // device A
  expect(result.cursor).toBe(cursor);
  const next = await ctx.sync.pull(user, { cursor: result.cursor });
  expect(next.changes.map((c) => c.recordId)).toEqual(['other', 'mine']);
});

test('a push with a conflict still returns a cursor that skips nothing', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  const { cursor } = await ctx.sync.pull(user, {});
  // Up to date, with one stale change: the applied one is covered, the conflict carried its state.
  const result = await ctx.sync.push(user, { changes: [put('a', 1), put('b', 5)], cursor });
  expect(result.conflicts).toHaveLength(1);
  expect((await ctx.sync.pull(user, { cursor: result.cursor })).changes).toEqual([]);
  await ctx.sync.push(user, { changes: [put('b', 1)] });
  expect((await ctx.sync.pull(user, { cursor: result.cursor })).changes.map((c) => [c.recordId, c.version])).toEqual([['b', 2]]);
});

test('an atomic push rejected by a conflict writes nothing, and its cursor skips nothing', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0)] });
  const { cursor } = await ctx.sync.pull(user, {});
  const result = await ctx.sync.push(user, { atomic: true, changes: [put('new', 0), put('a', 9)], cursor });
  expect(result.applied).toEqual([]);
  // The rejected push wrote nothing, and the device was up to date: nothing waits after its cursor...
  expect((await ctx.sync.pull(user, { cursor: result.cursor })).changes).toEqual([]);
  // ...but never past anything written afterwards.
  await ctx.sync.push(user, { changes: [put('b', 0)] });
  expect((await ctx.sync.pull(user, { cursor: result.cursor })).changes.map((c) => c.recordId)).toEqual(['b']);
  // And since the device was up to date, its next push moves its cursor past its own changes.
  const next = await ctx.sync.push(user, { changes: [put('c', 0)], cursor: (await ctx.sync.pull(user, { cursor: result.cursor })).cursor });
  expect((await ctx.sync.pull(user, { cursor: next.cursor })).changes).toEqual([]);
});

test('a push without a cursor returns a cursor from which a pull returns everything', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0)] });
  const result = await ctx.sync.push(user, { changes: [put('b', 0)] });
  expect((await pullAll(ctx.sync, user, result.cursor)).changes.map((c) => c.recordId)).toEqual(['a', 'b']);
});

test('a push carrying a mid-feed cursor (from a page with hasMore) keeps it, so the rest of the feed is still pulled', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0)] });
  const page = await ctx.sync.pull(user, { limit: 1 });
  expect(page.hasMore).toBe(true);
  const result = await ctx.sync.push(user, { changes: [put('mine', 0)], cursor: page.cursor });
  expect(result.cursor).toBe(page.cursor);
  expect((await pullAll(ctx.sync, user, result.cursor)).changes.map((c) => c.recordId)).toEqual(['b', 'c', 'mine']);
});

test('a device that always adopts push cursors, interleaved with another device, never misses that device\'s changes', async () => {
  const user = await newVault(ctx.sync);
  const seenByA = new Map<string, number>();
  let cursorA: string | null = null;
  for (let round = 0; round < 6; round++) {
    // Device B writes something A has not seen on every other round.
    if (round % 2 === 0) await ctx.sync.push(user, { changes: [put(`b${round}`, 0)] });
    const result = await ctx.sync.push(user, { changes: [put(`a${round}`, 0)], cursor: cursorA });
    for (const a of result.applied) seenByA.set(a.recordId, a.version);
    cursorA = result.cursor;
    // A pulls on odd rounds only, so it sometimes pushes with a stale cursor and sometimes not.
    if (round % 2 === 1) {
      const pulled = await pullAll(ctx.sync, user, cursorA);
      for (const c of pulled.changes) seenByA.set(c.recordId, c.version);
      cursorA = pulled.cursor;
    }
  }
  const final = await pullAll(ctx.sync, user, cursorA);
  for (const c of final.changes) seenByA.set(c.recordId, c.version);
  const everything = await pullAll(ctx.sync, user, null);
  expect(Object.fromEntries(seenByA)).toEqual(Object.fromEntries(everything.changes.map((c) => [c.recordId, c.version])));
});
