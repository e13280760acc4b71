/**
 * The vault key lifecycle: enable, read, rewrap (password/KDF change), rotate (new key, every live
 * record re-encrypted in one go) and disable. Every rejected call is checked to have changed
 * nothing at all, by fingerprinting both tables in SQL.
 */
import { describe, expect, test } from 'vitest';
import { ValidationError, VaultAlreadyEnabledError, VaultNotFoundError, VersionConflictError } from '../../src/errors.js';
import type { RotateKeyInput } from '../../src/sync/types.js';
import { argon2id, envelope, pbkdf2 } from '../support/fixtures.js';
import { bytes, del, newUserId, newVault, pullAll, put, recordsDigest, rejectionOf, setupSyncDatabase, storedRecords, tableDigest, vaultDigest } from './support/sync.js';

// Every call reaches the database at once, as from several processes: the per-process
// per-vault gate (maxConcurrentCallsPerVault) would otherwise refuse most of them up front.
const ctx = setupSyncDatabase({ maxConcurrentCallsPerVault: 64 });

async function vaultCount(userId: string): Promise<number> {
  const { rows } = await ctx.db.pool.query<{ n: string }>('select count(*) as n from vaults where user_id = $1', [userId]);
  return Number(rows[0]?.n);
}

describe('enableVault and getVault', () => {
  test('enableVault stores the envelope and returns it as VaultInfo at version 1; getVault returns the same', async () => {
    const user = newUserId();
    const env = envelope(argon2id);
    const info = await ctx.sync.enableVault(user, { ...env, deviceFingerprint: 'laptop-1' });
    expect(info).toMatchObject({ userId: user, kdfParams: argon2id, deviceFingerprint: 'laptop-1', version: 1 });
    expect(Buffer.isBuffer(info.wrappedKey) && info.wrappedKey.equals(Buffer.from(env.wrappedKey))).toBe(true);
    expect(Buffer.isBuffer(info.salt) && info.salt.equals(Buffer.from(env.salt))).toBe(true);
    expect(info.enabledAt).toBeInstanceOf(Date);
    expect(info.updatedAt).toBeInstanceOf(Date);
    expect(await ctx.sync.getVault(user)).toEqual(info);

    const { rows } = await ctx.db.pool.query<{ wrapped_key: Buffer; version: number }>('select wrapped_key, version from vaults where user_id = $1', [user]);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.wrapped_key.equals(Buffer.from(env.wrappedKey))).toBe(true);
  });

  test('getVault returns null for a user with no vault', async () => {
    expect(await ctx.sync.getVault(newUserId())).toBeNull();
  });

  test('enabling twice is VaultAlreadyEnabledError and leaves the first envelope in place', async () => {
    const user = newUserId();
    const first = await ctx.sync.enableVault(user, envelope());
    const error = await rejectionOf(ctx.sync.enableVault(user, envelope()));
    expect(error).toBeInstanceOf(VaultAlreadyEnabledError);
    expect(error).toMatchObject({ code: 'vault_already_enabled', retryable: false });
    expect(await ctx.sync.getVault(user)).toEqual(first);
  });

  test('concurrent enableVault calls for one user: exactly one succeeds, the others get VaultAlreadyEnabledError', async () => {
    // Several users and several callers each, so the count-then-insert race is really exercised.
    for (let round = 0; round < 4; round++) {
      const user = newUserId('race');
      const envelopes = Array.from({ length: 4 }, () => envelope());
      const outcomes = await Promise.allSettled(envelopes.map((env) => ctx.sync.enableVault(user, env)));
      const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(VaultAlreadyEnabledError);
      expect(await vaultCount(user)).toBe(1);
      // The stored envelope is the winner's.
      const stored = await ctx.sync.getVault(user);
      expect(stored?.wrappedKey.equals(Buffer.from((envelopes[won[0] as number] as { wrappedKey: Uint8Array }).wrappedKey))).toBe(true);
    }
  });

  test.each([
    ['PBKDF2 below 600,000 iterations', { ...envelope(), kdfParams: { ...pbkdf2, iterations: 599_999 } }],
    ['Argon2id below 15 MiB', { ...envelope(argon2id), kdfParams: { ...argon2id, memoryMiB: 14 } }],
    ['Argon2id with 1 iteration', { ...envelope(argon2id), kdfParams: { ...argon2id, iterations: 1 } }],
    ['an unknown algorithm', { ...envelope(), kdfParams: { algorithm: 'MD5', iterations: 1, saltLength: 16 } }],
    ['a salt shorter than saltLength says', { ...envelope(), salt: bytes(15) }],
    ['a wrapped key of 8 bytes', { ...envelope(), wrappedKey: bytes(8) }],
  ])('a weak or malformed envelope (%s) is a ValidationError and creates no vault', async (_name, input) => {
    const user = newUserId();
    const before = await tableDigest(ctx.db.pool);
    const error = await rejectionOf(ctx.sync.enableVault(user, input as Parameters<typeof ctx.sync.enableVault>[1]));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ code: 'validation_failed' });
    expect(await vaultCount(user)).toBe(0);
    expect(await tableDigest(ctx.db.pool)).toEqual(before);
  });
});

describe('rewrapKey', () => {
  test('with the current expectedVersion it replaces the envelope, bumps the version, and leaves every record untouched', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0)] });
    await ctx.sync.push(user, { changes: [del('c', 1)] });
    const records = await recordsDigest(ctx.db.pool, user);
    const { cursor } = await ctx.sync.pull(user, {});

    const next = envelope(argon2id);
    const info = await ctx.sync.rewrapKey(user, { expectedVersion: 1, ...next });
    expect(info).toMatchObject({ userId: user, version: 2, kdfParams: argon2id });
    expect(info.wrappedKey.equals(Buffer.from(next.wrappedKey))).toBe(true);
    expect(info.salt.equals(Buffer.from(next.salt))).toBe(true);
    expect(await ctx.sync.getVault(user)).toEqual(info);
    // Same vault key: not one record row changed (versions, bytes, feed positions, timestamps).
    expect(await recordsDigest(ctx.db.pool, user)).toBe(records);
    expect((await ctx.sync.pull(user, { cursor })).changes).toEqual([]);

    expect((await ctx.sync.rewrapKey(user, { expectedVersion: 2, ...envelope() })).version).toBe(3);
  });

  test('with a stale expectedVersion it is VersionConflictError naming the current version, and changes nothing', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    await ctx.sync.rewrapKey(user, { expectedVersion: 1, ...envelope() });
    const before = await tableDigest(ctx.db.pool);
    const error = await rejectionOf(ctx.sync.rewrapKey(user, { expectedVersion: 1, ...envelope() }));
    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ code: 'version_conflict', currentVersion: 2 });
    expect(await tableDigest(ctx.db.pool)).toEqual(before);
  });

  test('a weak envelope is a ValidationError and changes nothing', async () => {
    const user = await newVault(ctx.sync);
    const before = await tableDigest(ctx.db.pool);
    const weak = { expectedVersion: 1, ...envelope(), kdfParams: { ...pbkdf2, iterations: 1000 } };
    expect(await rejectionOf(ctx.sync.rewrapKey(user, weak))).toBeInstanceOf(ValidationError);
    expect(await tableDigest(ctx.db.pool)).toEqual(before);
  });
});

describe('rotateKey', () => {
  /** A vault with live records a, b (b at version 2), c and a tombstone d. */
  async function vaultForRotation(): Promise<string> {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0), put('d', 0)] });
    await ctx.sync.push(user, { changes: [put('b', 1), del('d', 1)] });
    return user;
  }

  /** A rotation covering exactly the live records at their stored versions. */
  async function fullRotation(user: string, expectedVersion = 1): Promise<RotateKeyInput> {
    const live = [...(await storedRecords(ctx.db.pool, user)).values()].filter((r) => !r.deleted);
    return { expectedVersion, ...envelope(argon2id), records: live.map((r) => ({ recordId: r.recordId, baseVersion: r.version, ciphertext: bytes(40) })) };
  }

  test('re-encrypts every live record (version + 1, new bytes) and replaces the envelope, in one call', async () => {
    const user = await vaultForRotation();
    const before = await storedRecords(ctx.db.pool, user);
    const { cursor } = await ctx.sync.pull(user, {});
    const input = await fullRotation(user);
    expect(input.records.map((r) => [r.recordId, r.baseVersion])).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 1],
    ]);

    const info = await ctx.sync.rotateKey(user, input);
    expect(info).toMatchObject({ version: 2, kdfParams: argon2id });
    expect(info.wrappedKey.equals(Buffer.from(input.wrappedKey))).toBe(true);

    const after = await storedRecords(ctx.db.pool, user);
    for (const submitted of input.records) {
      const row = after.get(submitted.recordId);
      expect(row?.version).toBe(submitted.baseVersion + 1);
      expect(row?.ciphertext.equals(Buffer.from(submitted.ciphertext))).toBe(true);
    }
    // The tombstone is not part of the live set and stays exactly as it was.
    expect(after.get('d')).toEqual(before.get('d'));
    // Other devices learn of the re-encrypted records through the feed.
    const pulled = await pullAll(ctx.sync, user, cursor);
    expect(pulled.changes.map((c) => [c.recordId, c.version]).sort()).toEqual([
      ['a', 2],
      ['b', 3],
      ['c', 2],
    ]);
  });

  test('an empty vault (or one of tombstones only) rotates with an empty record list', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('x', 0)] });
    await ctx.sync.push(user, { changes: [del('x', 1)] });
    expect((await ctx.sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: [] })).version).toBe(2);
  });

  const broken: [string, (input: RotateKeyInput) => RotateKeyInput][] = [
    ['missing a live record', (i) => ({ ...i, records: i.records.filter((r) => r.recordId !== 'b') })],
    ['with an extra, unknown record', (i) => ({ ...i, records: [...i.records, { recordId: 'zz', baseVersion: 1, ciphertext: bytes(40) }] })],
    ['including the tombstone', (i) => ({ ...i, records: [...i.records, { recordId: 'd', baseVersion: 2, ciphertext: bytes(40) }] })],
    ['with a stale baseVersion', (i) => ({ ...i, records: i.records.map((r) => (r.recordId === 'b' ? { ...r, baseVersion: 1 } : r)) })],
    ['with a stale expectedVersion', (i) => ({ ...i, expectedVersion: 7 })],
  ];
  test.each(broken)('a rotation %s is VersionConflictError and changes NOTHING (envelope and all records)', async (_name, breakIt) => {
    const user = await vaultForRotation();
    const before = await tableDigest(ctx.db.pool);
    const vaultBefore = await vaultDigest(ctx.db.pool, user);
    const error = await rejectionOf(ctx.sync.rotateKey(user, breakIt(await fullRotation(user))));
    expect(error).toBeInstanceOf(VersionConflictError);
    expect(error).toMatchObject({ code: 'version_conflict', currentVersion: 1 });
    expect(await vaultDigest(ctx.db.pool, user)).toBe(vaultBefore);
    expect(await tableDigest(ctx.db.pool)).toEqual(before);
  });

  test('the VersionConflictError of a rotation over the wrong records lists every differing record in mismatch', async () => {
    const user = await vaultForRotation();
    const input = await fullRotation(user);
    const records = [
      ...input.records.filter((r) => r.recordId !== 'a').map((r) => (r.recordId === 'b' ? { ...r, baseVersion: 1 } : r)),
      { recordId: 'd', baseVersion: 2, ciphertext: bytes(40) },
      { recordId: 'zz', baseVersion: 1, ciphertext: bytes(40) },
    ];
    const error = await rejectionOf(ctx.sync.rotateKey(user, { ...input, records }));
    expect(error).toBeInstanceOf(VersionConflictError);
    expect((error as VersionConflictError).mismatch).toEqual({ missing: ['a'], unknown: ['d', 'zz'], stale: ['b'] });
  });

  test('a rotation prepared before another device pushed is refused, and the push survives', async () => {
    const user = await vaultForRotation();
    const input = await fullRotation(user);
    const pushed = put('a', 1);
    await ctx.sync.push(user, { changes: [pushed] });
    expect(await rejectionOf(ctx.sync.rotateKey(user, input))).toBeInstanceOf(VersionConflictError);
    const row = (await storedRecords(ctx.db.pool, user)).get('a');
    expect(row?.ciphertext.equals(pushed.ciphertext)).toBe(true);
  });
});

describe('disableVault', () => {
  test('deletes the vault and every record (live and tombstones), and reports how many', async () => {
    const user = await newVault(ctx.sync);
    const other = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0)] });
    await ctx.sync.push(user, { changes: [del('c', 1)] });
    await ctx.sync.push(other, { changes: [put('a', 0)] });
    const otherBefore = await recordsDigest(ctx.db.pool, other);

    expect(await ctx.sync.disableVault(user)).toEqual({ deletedRecords: 3 });
    const { rows } = await ctx.db.pool.query<{ n: string }>('select count(*) as n from records where user_id = $1', [user]);
    expect(Number(rows[0]?.n)).toBe(0);
    expect(await vaultCount(user)).toBe(0);
    expect(await ctx.sync.getVault(user)).toBeNull();
    expect(await recordsDigest(ctx.db.pool, other)).toBe(otherBefore);
  });

  test('after disabling, the user can enable again and starts from an empty vault at version 1', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    await ctx.sync.rewrapKey(user, { expectedVersion: 1, ...envelope() });
    await ctx.sync.disableVault(user);
    expect((await ctx.sync.enableVault(user, envelope())).version).toBe(1);
    expect((await ctx.sync.pull(user, {})).changes).toEqual([]);
    // The old record id is free again.
    expect((await ctx.sync.push(user, { changes: [put('a', 0)] })).applied).toEqual([{ recordId: 'a', version: 1 }]);
  });
});

describe('a user with no vault', () => {
  const calls: [string, (user: string) => Promise<unknown>][] = [
    ['push', (u) => ctx.sync.push(u, { changes: [put('a', 0)] })],
    ['push (empty)', (u) => ctx.sync.push(u, { changes: [] })],
    ['pull', (u) => ctx.sync.pull(u, {})],
    ['rewrapKey', (u) => ctx.sync.rewrapKey(u, { expectedVersion: 1, ...envelope() })],
    ['rotateKey', (u) => ctx.sync.rotateKey(u, { expectedVersion: 1, ...envelope(), records: [] })],
    ['disableVault', (u) => ctx.sync.disableVault(u)],
  ];
  test.each(calls)('%s throws VaultNotFoundError and writes nothing', async (_name, call) => {
    const user = newUserId('novault');
    const before = await tableDigest(ctx.db.pool);
    const error = await rejectionOf(call(user));
    expect(error).toBeInstanceOf(VaultNotFoundError);
    expect(error).toMatchObject({ code: 'vault_not_found', userId: user });
    expect(await tableDigest(ctx.db.pool)).toEqual(before);
  });

  test('a disabled vault counts as no vault', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.disableVault(user);
    expect(await rejectionOf(ctx.sync.push(user, { changes: [put('a', 0)] }))).toBeInstanceOf(VaultNotFoundError);
    expect(await rejectionOf(ctx.sync.disableVault(user))).toBeInstanceOf(VaultNotFoundError);
  });
});
