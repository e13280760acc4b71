/**
 * T-AUTH-03's own `KdfParams` (`{ algorithm: 'PBKDF2', iterations, saltLength }`) goes through
 * every call that writes an envelope, and the row holds exactly what was sent: the JSON of the
 * parameters, the wrapped key and the salt, read back with raw SQL behind the service's back.
 * Vaults stored by earlier releases under the deprecated `'PBKDF2-SHA256'` name keep working.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import type { KdfParams } from '../../src/envelope.js';
import { newUserId, put, setupSyncDatabase } from './support/sync.js';

const ctx = setupSyncDatabase();

/** Exactly the ticket's literal. */
const TICKET_KDF = { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 } as const satisfies KdfParams;

interface StoredEnvelope {
  kdf: unknown;
  /** True when the stored jsonb equals the JSON text that was sent, parsed by PostgreSQL itself. */
  kdfAsSent: boolean;
  wrappedKey: Buffer;
  salt: Buffer;
  version: number;
}

async function stored(userId: string, sentKdf: unknown): Promise<StoredEnvelope> {
  const { rows } = await ctx.db.pool.query<{ kdf_params: unknown; as_sent: boolean; wrapped_key: Buffer; salt: Buffer; version: number }>(
    'select kdf_params, kdf_params = $2::jsonb as as_sent, wrapped_key, salt, version from vaults where user_id = $1',
    [userId, JSON.stringify(sentKdf)],
  );
  const row = rows[0];
  if (!row) throw new Error(`no vault row for ${userId}`);
  return { kdf: row.kdf_params, kdfAsSent: row.as_sent, wrappedKey: row.wrapped_key, salt: row.salt, version: row.version };
}

function envelopeWith(kdfParams: KdfParams): { wrappedKey: Buffer; salt: Buffer; kdfParams: KdfParams } {
  return { wrappedKey: randomBytes(60), salt: randomBytes(kdfParams.saltLength), kdfParams };
}

function expectStoredAsSent(row: StoredEnvelope, sent: { wrappedKey: Buffer; salt: Buffer; kdfParams: KdfParams }): void {
  expect(row.kdf).toStrictEqual({ ...sent.kdfParams });
  expect(row.kdfAsSent).toBe(true);
  expect(row.wrappedKey.equals(sent.wrappedKey)).toBe(true);
  expect(row.salt.equals(sent.salt)).toBe(true);
}

describe("the ticket's KdfParams", () => {
  test('enableVault accepts it and stores it, the wrapped key and the salt exactly as sent', async () => {
    const user = newUserId();
    const sent = envelopeWith(TICKET_KDF);
    const info = await ctx.sync.enableVault(user, sent);
    expect(info.kdfParams).toStrictEqual(TICKET_KDF);
    expectStoredAsSent(await stored(user, TICKET_KDF), sent);
    expect((await ctx.sync.getVault(user))?.kdfParams).toStrictEqual(TICKET_KDF);
  });

  test('rewrapKey accepts it and stores it as sent', async () => {
    const user = newUserId();
    await ctx.sync.enableVault(user, envelopeWith({ algorithm: 'Argon2id', memoryMiB: 64, iterations: 3, parallelism: 4, saltLength: 32 }));
    const sent = envelopeWith({ ...TICKET_KDF, iterations: 1_234_567 });
    const info = await ctx.sync.rewrapKey(user, { expectedVersion: 1, ...sent });
    expect(info.version).toBe(2);
    expectStoredAsSent(await stored(user, sent.kdfParams), sent);
  });

  test('rotateKey accepts it and stores it as sent, with the records re-encrypted', async () => {
    const user = newUserId();
    await ctx.sync.enableVault(user, envelopeWith(TICKET_KDF));
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
    const sent = envelopeWith({ ...TICKET_KDF, iterations: 2_000_000, saltLength: 64 });
    const info = await ctx.sync.rotateKey(user, {
      expectedVersion: 1,
      ...sent,
      records: [
        { recordId: 'a', baseVersion: 1, ciphertext: randomBytes(40) },
        { recordId: 'b', baseVersion: 1, ciphertext: randomBytes(40) },
      ],
    });
    expect(info.kdfParams).toStrictEqual(sent.kdfParams);
    expectStoredAsSent(await stored(user, sent.kdfParams), sent);
  });
});

describe("vaults stored under the deprecated 'PBKDF2-SHA256' name", () => {
  const LEGACY = { algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 } as const satisfies KdfParams;

  /** A vault row exactly as an earlier release wrote it, inserted with raw SQL. */
  async function legacyVault(): Promise<string> {
    const user = newUserId('legacy');
    await ctx.db.pool.query('insert into vaults (user_id, wrapped_key, salt, kdf_params) values ($1, $2, $3, $4::jsonb)', [
      user,
      randomBytes(60),
      randomBytes(16),
      JSON.stringify(LEGACY),
    ]);
    return user;
  }

  test('are read back unchanged', async () => {
    const user = await legacyVault();
    expect((await ctx.sync.getVault(user))?.kdfParams).toStrictEqual(LEGACY);
  });

  test("rewrap to the ticket's name and store it as sent", async () => {
    const user = await legacyVault();
    const sent = envelopeWith(TICKET_KDF);
    await ctx.sync.rewrapKey(user, { expectedVersion: 1, ...sent });
    expectStoredAsSent(await stored(user, TICKET_KDF), sent);
  });

  test('rewrap and rotate under the old name too, which is kept as sent and not rewritten', async () => {
    const user = await legacyVault();
    const rewrapped = envelopeWith({ ...LEGACY, iterations: 700_000 });
    await ctx.sync.rewrapKey(user, { expectedVersion: 1, ...rewrapped });
    expectStoredAsSent(await stored(user, rewrapped.kdfParams), rewrapped);
    await ctx.sync.push(user, { changes: [put('x', 0)] });
    const rotated = envelopeWith(LEGACY);
    await ctx.sync.rotateKey(user, { expectedVersion: 2, ...rotated, records: [{ recordId: 'x', baseVersion: 1, ciphertext: randomBytes(40) }] });
    expectStoredAsSent(await stored(user, LEGACY), rotated);
  });
});
