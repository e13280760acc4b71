/**
 * The rules the database itself enforces, exercised with raw SQL that bypasses the ORM, so they
 * hold for any client (a psql session, a future service, a bad migration).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestOrm, type TestOrm } from './support/database.js';
import { pbkdf2 } from './support/fixtures.js';

let db: TestOrm;
beforeAll(async () => { db = await createTestOrm(); });
afterAll(async () => { await db?.close(); });

/** Inserts a vault with raw SQL; returns its id. */
async function insertVault(userId: string = `user_${randomUUID()}`): Promise<{ id: string; userId: string }> {
  const { rows } = await db.pool.query<{ id: string }>(
    'insert into vaults (user_id, wrapped_key, salt, kdf_params) values ($1, $2, $3, $4) returning id',
    [userId, randomBytes(60), randomBytes(16), JSON.stringify(pbkdf2)],
  );
  return { id: rows[0]!.id, userId };
}

let nextSeq = 1;
/** Inserts a record with raw SQL; returns its row id. */
async function insertRecord(
  vault: { id: string; userId: string },
  fields: { userId?: string; recordId?: string; ciphertext?: Buffer; deleted?: boolean } = {},
): Promise<string> {
  const { rows } = await db.pool.query<{ id: string }>(
    `insert into records (user_id, vault_id, record_id, ciphertext, deleted, seq)
     values ($1, $2, $3, $4, $5, $6) returning id`,
    [
      fields.userId ?? vault.userId,
      vault.id,
      fields.recordId ?? randomUUID(),
      fields.ciphertext ?? randomBytes(32),
      fields.deleted ?? false,
      nextSeq++,
    ],
  );
  return rows[0]!.id;
}

async function countRecords(vaultId: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>('select count(*)::int as n from records where vault_id = $1', [vaultId]);
  return rows[0]!.n;
}

describe('foreign key records.vault_id -> vaults.id', () => {
  test('rejects a record whose vault does not exist', async () => {
    await expect(insertRecord({ id: randomUUID(), userId: 'nobody' })).rejects.toMatchObject({
      code: '23503',
      constraint: 'records_vault_id_fkey',
    });
  });

  test('deleting a vault in SQL deletes its records, and only its records', async () => {
    const doomed = await insertVault();
    const kept = await insertVault();
    await insertRecord(doomed);
    await insertRecord(doomed);
    await insertRecord(kept);

    await db.pool.query('delete from vaults where id = $1', [doomed.id]);

    expect(await countRecords(doomed.id)).toBe(0);
    expect(await countRecords(kept.id)).toBe(1);
  });
});

test('UNIQUE(vault_id, record_id) rejects a second row for the same client id', async () => {
  const vault = await insertVault();
  await insertRecord(vault, { recordId: 'bookmark-1' });
  await expect(insertRecord(vault, { recordId: 'bookmark-1' })).rejects.toMatchObject({
    code: '23505',
    constraint: 'records_vault_id_record_id_unique',
  });
  // The same client id in another vault is fine: uniqueness is per vault.
  await expect(insertRecord(await insertVault(), { recordId: 'bookmark-1' })).resolves.toBeTypeOf('string');
});

describe('records.user_id always equals its vault.user_id', () => {
  const ownerViolation = { code: '23514', constraint: 'records_user_id_matches_vault' };

  test('an INSERT with another user id fails', async () => {
    const vault = await insertVault();
    await expect(insertRecord(vault, { userId: 'intruder' })).rejects.toMatchObject(ownerViolation);
    expect(await countRecords(vault.id)).toBe(0);
  });

  test('an UPDATE of records.user_id fails', async () => {
    const vault = await insertVault();
    const id = await insertRecord(vault);
    await expect(db.pool.query(`update records set user_id = 'intruder' where id = $1`, [id])).rejects.toMatchObject(ownerViolation);
    const { rows } = await db.pool.query<{ user_id: string }>('select user_id from records where id = $1', [id]);
    expect(rows[0]?.user_id).toBe(vault.userId);
  });

  test("an UPDATE moving a record into another user's vault fails", async () => {
    const mine = await insertVault();
    const theirs = await insertVault();
    const id = await insertRecord(mine);
    await expect(db.pool.query('update records set vault_id = $1 where id = $2', [theirs.id, id])).rejects.toMatchObject(
      ownerViolation,
    );
    expect(await countRecords(mine.id)).toBe(1);
    expect(await countRecords(theirs.id)).toBe(0);
  });

  test('an UPDATE of vaults.user_id fails, so a vault cannot move away from its records', async () => {
    const vault = await insertVault();
    await insertRecord(vault);
    await expect(db.pool.query(`update vaults set user_id = 'someone-else' where id = $1`, [vault.id])).rejects.toMatchObject({
      code: '23514',
      constraint: 'vaults_user_id_immutable',
    });
    const { rows } = await db.pool.query<{ user_id: string }>('select user_id from vaults where id = $1', [vault.id]);
    expect(rows[0]?.user_id).toBe(vault.userId);
  });

  test('an UPDATE that sets vaults.user_id to its current value is allowed', async () => {
    // The trigger compares values, so a client that writes every column back is not refused.
    const vault = await insertVault();
    await expect(db.pool.query('update vaults set user_id = $1 where id = $2', [vault.userId, vault.id])).resolves.toMatchObject({
      rowCount: 1,
    });
  });
});

describe('updated_at is set by the database on every UPDATE', () => {
  /**
   * Reads updated_at as text: a JS Date keeps milliseconds only, and two autocommit transactions
   * can start within the same millisecond, so a comparison must happen in SQL at full precision.
   */
  async function updatedAt(table: 'vaults' | 'records', id: string): Promise<string> {
    const { rows } = await db.pool.query<{ at: string }>(`select updated_at::text as at from ${table} where id = $1`, [id]);
    return rows[0]!.at;
  }
  async function isLater(table: 'vaults' | 'records', id: string, before: string): Promise<boolean> {
    const { rows } = await db.pool.query<{ later: boolean }>(
      `select updated_at > $2::timestamptz as later from ${table} where id = $1`,
      [id, before],
    );
    return rows[0]!.later;
  }

  test('vaults: a raw UPDATE in a later transaction moves updated_at forward', async () => {
    const vault = await insertVault();
    const before = await updatedAt('vaults', vault.id);
    // Each pool.query is its own transaction, so now() in the UPDATE is later than at the INSERT.
    await db.pool.query(`update vaults set device_fingerprint = 'laptop' where id = $1`, [vault.id]);
    expect(await isLater('vaults', vault.id, before)).toBe(true);
  });

  test('vaults: moving only the counters (what every write to records does) leaves updated_at alone', async () => {
    const vault = await insertVault();
    const before = await updatedAt('vaults', vault.id);
    await db.pool.query('update vaults set last_seq = last_seq + 5, purged_seq = purged_seq + 1 where id = $1', [vault.id]);
    // Records written, so the triggers move every counter: an insert, an update and a delete.
    const id = await insertRecord(vault);
    await db.pool.query('update records set ciphertext = $1 where id = $2', [randomBytes(40), id]);
    await db.pool.query('delete from records where id = $1', [id]);
    await db.pool.query('update vaults set version_floor = version_floor + 1, record_count = record_count + 2, stored_bytes = stored_bytes + 64 where id = $1', [vault.id]);
    expect(await updatedAt('vaults', vault.id)).toBe(before);
    await db.pool.query(`update vaults set updated_at = '2000-01-01T00:00:00Z' where id = $1`, [vault.id]);
    expect(await isLater('vaults', vault.id, before)).toBe(true);
  });

  test('records: a raw UPDATE in a later transaction moves updated_at forward', async () => {
    const id = await insertRecord(await insertVault());
    const before = await updatedAt('records', id);
    await db.pool.query('update records set ciphertext = $1, version = version + 1 where id = $2', [randomBytes(32), id]);
    expect(await isLater('records', id, before)).toBe(true);
  });

  test('a client cannot write an old updated_at', async () => {
    // Sync clients may use updated_at to find changes; a back-dated row would be missed.
    const id = await insertRecord(await insertVault());
    const before = await updatedAt('records', id);
    await db.pool.query(`update records set updated_at = '2000-01-01T00:00:00Z' where id = $1`, [id]);
    expect(await isLater('records', id, before)).toBe(true);
  });
});

test('vaults: a new key version (a rotation) is a change of the vault itself and moves updated_at', async () => {
  const vault = await insertVault();
  const { rows } = await db.pool.query<{ at: string }>('select updated_at::text as at from vaults where id = $1', [vault.id]);
  await db.pool.query('update vaults set key_version = key_version + 1 where id = $1', [vault.id]);
  const { rows: later } = await db.pool.query<{ later: boolean }>('select updated_at > $2::timestamptz as later from vaults where id = $1', [vault.id, rows[0]!.at]);
  expect(later[0]!.later).toBe(true);
});

describe('check records_tombstone_is_empty', () => {
  const tombstoneViolation = { code: '23514', constraint: 'records_tombstone_is_empty' };

  test('a deleted record with ciphertext left in it is rejected', async () => {
    const vault = await insertVault();
    await expect(insertRecord(vault, { deleted: true, ciphertext: randomBytes(8) })).rejects.toMatchObject(tombstoneViolation);
  });

  test('a live record with empty ciphertext is rejected', async () => {
    const vault = await insertVault();
    await expect(insertRecord(vault, { ciphertext: Buffer.alloc(0) })).rejects.toMatchObject(tombstoneViolation);
  });

  test('turning a record into a tombstone must erase its ciphertext in the same write', async () => {
    const id = await insertRecord(await insertVault());
    await expect(db.pool.query('update records set deleted = true where id = $1', [id])).rejects.toMatchObject(tombstoneViolation);
    await expect(
      db.pool.query(`update records set deleted = true, ciphertext = '\\x'::bytea where id = $1`, [id]),
    ).resolves.toMatchObject({ rowCount: 1 });
  });
});
