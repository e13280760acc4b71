/**
 * Tenant isolation: two users with the same record ids. Nothing one of them does, reads or is
 * told in a conflict involves the other's records.
 */
import { beforeEach, expect, test } from 'vitest';
import { ResyncRequiredError } from '../../src/errors.js';
import { envelope } from '../support/fixtures.js';
import { bytes, del, newVault, pullAll, put, recordsDigest, rejectionOf, setupSyncDatabase, storedRecords, vaultDigest } from './support/sync.js';

const ctx = setupSyncDatabase();
const IDS = ['r1', 'r2', 'r3'];

let alice: string;
let bob: string;
/** The bytes each user stored under each record id. */
let stored: Map<string, Map<string, Buffer>>;

beforeEach(async () => {
  alice = await newVault(ctx.sync, 'alice');
  bob = await newVault(ctx.sync, 'bob');
  stored = new Map();
  for (const user of [alice, bob]) {
    const changes = IDS.map((id) => put(id, 0, bytes(32)));
    await ctx.sync.push(user, { changes });
    stored.set(user, new Map(changes.map((c) => [c.recordId, c.ciphertext])));
  }
});

/** Bytes of `user`'s record `id` as stored at setup. */
const original = (user: string, id: string) => stored.get(user)?.get(id) as Buffer;

test('both users can create the same record ids, each at version 1', async () => {
  for (const user of [alice, bob]) {
    const rows = await storedRecords(ctx.db.pool, user);
    expect([...rows.values()].map((r) => [r.recordId, r.version])).toEqual(IDS.map((id) => [id, 1]));
    for (const id of IDS) expect(rows.get(id)?.ciphertext.equals(original(user, id))).toBe(true);
  }
});

test('a pull returns only the caller\'s own records', async () => {
  for (const user of [alice, bob]) {
    const pulled = await pullAll(ctx.sync, user, null);
    expect(pulled.changes.map((c) => c.recordId)).toEqual(IDS);
    for (const c of pulled.changes) expect(c.ciphertext?.equals(original(user, c.recordId))).toBe(true);
  }
});

test('updates and deletes by one user leave the other\'s same-named records untouched', async () => {
  const bobBefore = await recordsDigest(ctx.db.pool, bob);
  const bobCursor = (await ctx.sync.pull(bob, {})).cursor;
  const result = await ctx.sync.push(alice, { changes: [put('r1', 1), del('r2', 1), put('new', 0)] });
  expect(result.conflicts).toEqual([]);
  expect(await recordsDigest(ctx.db.pool, bob)).toBe(bobBefore);
  // Bob's feed did not move either.
  expect((await ctx.sync.pull(bob, { cursor: bobCursor })).changes).toEqual([]);
});

test('conflicts show the caller\'s own server state, never the other user\'s', async () => {
  await ctx.sync.push(bob, { changes: [put('r1', 1), put('r1-only-bob', 0)] });
  // Alice is at version 1 of her r1, while Bob's r1 is at 2: no conflict for her.
  expect((await ctx.sync.push(alice, { changes: [put('r1', 1)] })).conflicts).toEqual([]);

  const exists = await ctx.sync.push(alice, { changes: [put('r3', 0)] });
  expect(exists.conflicts).toMatchObject([{ recordId: 'r3', reason: 'exists', server: { version: 1 } }]);
  expect(exists.conflicts[0]?.server?.ciphertext?.equals(original(alice, 'r3'))).toBe(true);

  // A record only Bob has is "gone" for Alice, with no server state to leak.
  const gone = await ctx.sync.push(alice, { changes: [put('r1-only-bob', 1)] });
  expect(gone.conflicts).toEqual([{ recordId: 'r1-only-bob', reason: 'gone', server: null }]);
  // And she may create it as her own.
  expect((await ctx.sync.push(alice, { changes: [put('r1-only-bob', 0)] })).applied).toEqual([{ recordId: 'r1-only-bob', version: 1 }]);
});

test('one user\'s cursor is refused for the other, even at the same feed position', async () => {
  const aliceCursor = (await ctx.sync.pull(alice, {})).cursor;
  expect(await rejectionOf(ctx.sync.pull(bob, { cursor: aliceCursor }))).toBeInstanceOf(ResyncRequiredError);
});

test('rewrap, rotation, purge and disable of one user never touch the other\'s vault or records', async () => {
  const bobRecords = await recordsDigest(ctx.db.pool, bob);
  const bobVault = await vaultDigest(ctx.db.pool, bob);
  await ctx.sync.push(bob, { changes: [del('r3', 1)] });
  const bobRecordsWithTombstone = await recordsDigest(ctx.db.pool, bob);
  expect(bobRecordsWithTombstone).not.toBe(bobRecords);
  const bobVaultNow = await vaultDigest(ctx.db.pool, bob);
  expect(bobVaultNow).not.toBe(bobVault);

  await ctx.sync.rewrapKey(alice, { expectedVersion: 1, ...envelope() });
  // Alice's rotation covers her live set only; Bob's same-named records are not in it.
  await ctx.sync.rotateKey(alice, { expectedVersion: 2, ...envelope(), records: IDS.map((id) => ({ recordId: id, baseVersion: 1, ciphertext: bytes(32) })) });
  await ctx.sync.push(alice, { changes: [del('r1', 2)] });
  expect(await ctx.sync.purgeTombstones({ olderThan: new Date(Date.now() + 60_000), userId: alice })).toEqual({ purged: 1, vaults: 1, skipped: [] });
  expect(await ctx.sync.disableVault(alice)).toEqual({ deletedRecords: 2 });

  expect(await recordsDigest(ctx.db.pool, bob)).toBe(bobRecordsWithTombstone);
  expect(await vaultDigest(ctx.db.pool, bob)).toBe(bobVaultNow);
  expect((await ctx.sync.getVault(bob))?.version).toBe(1);
});
