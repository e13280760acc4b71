/**
 * The counters migration (Migration20261130100200) on a database that already holds vaults and
 * records: it backfills `record_count` and `stored_bytes` from the rows, and a version floor for
 * vaults that were purged before (their purged rows' versions are gone, so the highest remaining
 * version is the best floor there is), without touching `updated_at`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type pg from 'pg';
import { MikroORM } from '@mikro-orm/postgresql';
import type { Migrator } from '@mikro-orm/migrations';
import { createConfig } from '../src/config.js';
import { createTestDatabase, type TestDatabase, testPool } from './support/database.js';
import { pbkdf2 } from './support/fixtures.js';

let db: TestDatabase;
let pool: pg.Pool;
let orm: MikroORM;
beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  pool = testPool(db.url, 2);
  const config = createConfig(db.url, { pool: { min: 0, max: 2 } });
  // snapshot off, as in migrations.test.ts: never write over the committed snapshot.
  orm = await MikroORM.init({ ...config, migrations: { ...config.migrations, snapshot: false } });
});
afterAll(async () => {
  await orm?.close(true);
  await pool?.end();
  await db?.drop();
});

test('existing vaults get exact counters, a floor where they were purged, and the same updated_at', async () => {
  const migrator = orm.getMigrator() as Migrator;
  await migrator.up({ to: 'Migration20261127130000' });

  const vault = async (userId: string, purgedSeq: number) =>
    (await pool.query<{ id: string }>(
      'insert into vaults (user_id, wrapped_key, salt, kdf_params, last_seq, purged_seq) values ($1, $2, $3, $4, 10, $5) returning id',
      [userId, randomBytes(60), randomBytes(16), JSON.stringify(pbkdf2), purgedSeq],
    )).rows[0]!.id;
  const purged = await vault('was-purged', 4);
  const never = await vault('never-purged', 0);
  await vault('empty', 0);
  const record = (vaultId: string, userId: string, recordId: string, bytes: number, version: number, seq: number) =>
    pool.query('insert into records (user_id, vault_id, record_id, ciphertext, version, deleted, seq) values ($1, $2, $3, $4, $5, $6, $7)', [
      userId, vaultId, recordId, Buffer.alloc(bytes, 1), version, bytes === 0, seq,
    ]);
  await record(purged, 'was-purged', 'a', 10, 5, 5);
  await record(purged, 'was-purged', 'b', 0, 7, 6);
  await record(purged, 'was-purged', 'c', 30, 2, 7);
  await record(never, 'never-purged', 'a', 20, 9, 1);
  await record(never, 'never-purged', 'b', 0, 3, 2);
  const updatedAt = async () => (await pool.query<{ user_id: string; at: string }>('select user_id, updated_at::text as at from vaults order by user_id')).rows;
  const before = await updatedAt();

  await migrator.up();
  const { rows } = await pool.query<{ user_id: string; record_count: number; stored_bytes: string; version_floor: number; key_version: number; last_seq: string }>(
    'select user_id, record_count, stored_bytes, version_floor, key_version, last_seq from vaults order by user_id',
  );
  expect(rows).toEqual([
    { user_id: 'empty', record_count: 0, stored_bytes: '0', version_floor: 0, key_version: 1, last_seq: '10' },
    { user_id: 'never-purged', record_count: 1, stored_bytes: '20', version_floor: 0, key_version: 1, last_seq: '10' },
    { user_id: 'was-purged', record_count: 2, stored_bytes: '40', version_floor: 7, key_version: 1, last_seq: '10' },
  ]);
  expect(await updatedAt()).toEqual(before);
});
