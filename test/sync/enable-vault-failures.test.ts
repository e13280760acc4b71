/**
 * enableVault reports "already enabled" only for the unique violation of a second vault, never for
 * any other failure of its flush: a dropped connection or a serialization failure must stay a
 * retryable TransientError, and any other database failure a DatabaseError. Input that is not an
 * object is a ValidationError, not a TypeError, for every call that takes an envelope.
 *
 * The failures are real PostgreSQL errors: a trigger on this file's `vaults` table raises the
 * SQLSTATE named in the user id, so the INSERT of the flush fails exactly as it would on a server.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { DatabaseError, TransientError, ValidationError, VaultAlreadyEnabledError } from '../../src/errors.js';
import type { EnableVaultInput, RewrapKeyInput, RotateKeyInput } from '../../src/sync/types.js';
import { envelope } from '../support/fixtures.js';
import { newUserId, newVault, rejectionOf, setupSyncDatabase } from './support/sync.js';

const ctx = setupSyncDatabase();

beforeAll(async () => {
  // Raised only for user ids "fail-<SQLSTATE>-...": every other test's vaults insert normally.
  await ctx.db.pool.query(`
    create function test_fail_vault_insert() returns trigger language plpgsql as $$
    begin
      if new.user_id like 'fail-%' then
        raise exception 'injected failure for %', new.user_id using errcode = split_part(new.user_id, '-', 2);
      end if;
      return new;
    end $$;
    create trigger test_fail_vault_insert before insert on vaults for each row execute function test_fail_vault_insert();
  `);
});

async function vaultRows(userId: string): Promise<number> {
  const { rows } = await ctx.db.pool.query<{ n: number }>('select count(*)::int as n from vaults where user_id = $1', [userId]);
  return (rows[0] as { n: number }).n;
}

describe('a failed flush of enableVault', () => {
  test.each([
    ['40001', 'a serialization failure'],
    ['08006', 'a connection failure'],
  ])('SQLSTATE %s (%s) is a retryable TransientError, not "already enabled"', async (code) => {
    const user = `fail-${code}-${newUserId()}`;
    const error = await rejectionOf(ctx.sync.enableVault(user, envelope()));
    expect(error).not.toBeInstanceOf(VaultAlreadyEnabledError);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as TransientError).retryable).toBe(true);
    expect(((error as TransientError).cause as { code?: string }).code).toBe(code);
    expect(await vaultRows(user)).toBe(0);
  });

  test('a check violation is a DatabaseError, not "already enabled"', async () => {
    const user = `fail-23514-${newUserId()}`;
    const error = await rejectionOf(ctx.sync.enableVault(user, envelope()));
    expect(error).not.toBeInstanceOf(VaultAlreadyEnabledError);
    expect(error).toBeInstanceOf(DatabaseError);
    expect(((error as DatabaseError).cause as { code?: string }).code).toBe('23514');
  });

  test('a unique violation at the flush (the second of two racing devices) is "already enabled"', async () => {
    const user = `fail-23505-${newUserId()}`;
    const error = await rejectionOf(ctx.sync.enableVault(user, envelope()));
    expect(error).toBeInstanceOf(VaultAlreadyEnabledError);
    expect((error as VaultAlreadyEnabledError).userId).toBe(user);
  });

  test('and a second enableVault of an existing vault is "already enabled" before any flush', async () => {
    const user = await newVault(ctx.sync);
    expect(await rejectionOf(ctx.sync.enableVault(user, envelope()))).toBeInstanceOf(VaultAlreadyEnabledError);
    expect(await vaultRows(user)).toBe(1);
  });
});

describe('input that is not an object is a ValidationError, not a TypeError', () => {
  test.each([null, undefined, 'envelope'])('%o', async (input) => {
    const user = await newVault(ctx.sync);
    const calls = [
      () => ctx.sync.enableVault(newUserId(), input as unknown as EnableVaultInput),
      () => ctx.sync.rewrapKey(user, input as unknown as RewrapKeyInput),
      () => ctx.sync.rotateKey(user, input as unknown as RotateKeyInput),
    ];
    for (const call of calls) {
      const error = await rejectionOf(call());
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).violations).toEqual([{ path: '(input)', rule: `must be an object, not ${input === null ? 'null' : typeof input}` }]);
    }
  });
});
