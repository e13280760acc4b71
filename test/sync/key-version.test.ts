/**
 * Writes carry the key version they were encrypted under (issue #12, "key generation on writes"):
 * after a rotation, a device still on the old key can't create or update records, so a rotation
 * really ends with every live record under the new key. Before the first rotation the field is
 * optional, so clients that never send it keep working.
 */
import { describe, expect, test } from 'vitest';
import { StaleKeyError, ValidationError } from '../../src/errors.js';
import { argon2id, envelope } from '../support/fixtures.js';
import { bytes, del, newVault, put, rejectionOf, setupSyncDatabase, storedRecords, tableDigest } from './support/sync.js';

const ctx = setupSyncDatabase();

async function rotated(): Promise<string> {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  const info = await ctx.sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: ['a', 'b'].map((recordId) => ({ recordId, baseVersion: 1, ciphertext: bytes() })) });
  expect(info.keyVersion).toBe(2);
  return user;
}

async function refusedStale(user: string, input: Parameters<typeof ctx.sync.push>[1]): Promise<StaleKeyError> {
  const before = await tableDigest(ctx.db.pool);
  const error = await rejectionOf(ctx.sync.push(user, input));
  expect(error).toBeInstanceOf(StaleKeyError);
  expect(error).toMatchObject({ code: 'stale_key', retryable: false });
  expect(await tableDigest(ctx.db.pool)).toEqual(before);
  return error as StaleKeyError;
}

test('a vault starts at key version 1; rewrapKey keeps it, rotateKey bumps it; VaultInfo and getVault report it', async () => {
  const user = await newVault(ctx.sync);
  expect((await ctx.sync.getVault(user))?.keyVersion).toBe(1);
  expect((await ctx.sync.rewrapKey(user, { expectedVersion: 1, ...envelope(argon2id) })).keyVersion).toBe(1);
  const info = await ctx.sync.rotateKey(user, { expectedVersion: 2, ...envelope(), records: [] });
  expect(info).toMatchObject({ version: 3, keyVersion: 2 });
  expect((await ctx.sync.getVault(user))?.keyVersion).toBe(2);
});

describe('before the first rotation', () => {
  test('keyVersion is optional, and 1 is accepted', async () => {
    const user = await newVault(ctx.sync);
    expect((await ctx.sync.push(user, { changes: [put('a', 0)] })).applied).toHaveLength(1);
    expect((await ctx.sync.push(user, { changes: [put('b', 0)], keyVersion: 1 })).applied).toHaveLength(1);
  });

  test('a keyVersion the vault never had is refused', async () => {
    const user = await newVault(ctx.sync);
    const error = await refusedStale(user, { changes: [put('a', 0)], keyVersion: 2 });
    expect(error).toMatchObject({ keyVersion: 2, currentKeyVersion: 1 });
  });
});

describe('after a rotation', () => {
  test('a push with ciphertext under the old key is StaleKeyError and writes nothing, even next to other changes', async () => {
    const user = await rotated();
    const error = await refusedStale(user, { changes: [put('c', 0), put('a', 2)], keyVersion: 1 });
    expect(error).toMatchObject({ keyVersion: 1, currentKeyVersion: 2 });
    expect(error.message).toMatch(/key version 1.*current key version is 2/);
  });

  test('a push with ciphertext that names no key version is refused: once rotated, it is required', async () => {
    const user = await rotated();
    const error = await refusedStale(user, { changes: [put('c', 0)] });
    expect(error).toMatchObject({ keyVersion: null, currentKeyVersion: 2 });
  });

  test('the current key version is accepted, and a push of deletes only needs none (no ciphertext)', async () => {
    const user = await rotated();
    expect((await ctx.sync.push(user, { changes: [put('a', 2), put('c', 0)], keyVersion: 2 })).applied).toHaveLength(2);
    expect((await ctx.sync.push(user, { changes: [del('b', 2)] })).applied).toEqual([{ recordId: 'b', version: 3 }]);
    expect((await ctx.sync.push(user, { changes: [del('c', 1)], keyVersion: 1 })).applied).toEqual([{ recordId: 'c', version: 2 }]);
    const rows = await storedRecords(ctx.db.pool, user);
    expect([...rows.values()].map((r) => [r.recordId, r.version, r.deleted])).toEqual([
      ['a', 3, false],
      ['b', 3, true],
      ['c', 2, true],
    ]);
  });
});

test.each([0, -1, 1.5, '2', Number.NaN, 2 ** 31])('a keyVersion of %s is a ValidationError', async (keyVersion) => {
  const user = await newVault(ctx.sync);
  const error = await rejectionOf(ctx.sync.push(user, { changes: [put('a', 0)], keyVersion: keyVersion as number }));
  expect(error).toBeInstanceOf(ValidationError);
  expect((error as ValidationError).violations[0]?.path).toBe('keyVersion');
});
