/**
 * The migrated schema, read back from pg_catalog. The assertions are exact and cover whole lists,
 * so a missing, extra or changed column, index, constraint or trigger fails a test.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { listColumns, listConstraints, listFunctions, listIndexes, listTables, listTriggers } from './support/catalog.js';

let db: TestDatabase;
let pool: pg.Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ ...pgConnectionConfig(db.url), max: 2 });
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const column = (name: string, type: string, nullable: boolean, dflt: string | null = null) => ({ name, type, nullable, default: dflt });
const TIMESTAMPTZ = 'timestamp with time zone';

test('public holds exactly the two tables, the claim key and the migrations log', async () => {
  expect(await listTables(pool)).toEqual(['mikro_orm_migrations', 'records', 'vault_db_claim_key', 'vaults']);
});

describe('columns', () => {
  test('vaults: types, nullability and defaults', async () => {
    expect(await listColumns(pool, 'vaults')).toEqual([
      column('id', 'uuid', false, 'gen_random_uuid()'),
      column('user_id', 'text', false),
      column('wrapped_key', 'bytea', false),
      column('salt', 'bytea', false),
      column('kdf_params', 'jsonb', false),
      column('device_fingerprint', 'text', true),
      column('version', 'integer', false, '1'),
      column('last_seq', 'bigint', false, '0'),
      column('purged_seq', 'bigint', false, '0'),
      column('enabled_at', TIMESTAMPTZ, false, 'now()'),
      column('created_at', TIMESTAMPTZ, false, 'now()'),
      column('updated_at', TIMESTAMPTZ, false, 'now()'),
    ]);
  });

  test('records: types, nullability and defaults', async () => {
    expect(await listColumns(pool, 'records')).toEqual([
      column('id', 'uuid', false, 'gen_random_uuid()'),
      column('user_id', 'text', false),
      column('vault_id', 'uuid', false),
      column('record_id', 'text', false),
      column('ciphertext', 'bytea', false),
      column('version', 'integer', false, '1'),
      column('deleted', 'boolean', false, 'false'),
      // No default: a feed position is always handed out under the vault lock.
      column('seq', 'bigint', false),
      column('created_at', TIMESTAMPTZ, false, 'now()'),
      column('updated_at', TIMESTAMPTZ, false, 'now()'),
    ]);
  });
});

describe('indexes', () => {
  const index = (name: string, columns: string[], unique = false, primary = false) => ({ name, columns, unique, primary });

  test('vaults: one vault per user', async () => {
    expect(await listIndexes(pool, 'vaults')).toEqual([
      index('idx_vaults_user_id', ['user_id'], true),
      index('vaults_pkey', ['id'], true, true),
    ]);
  });

  test('records: lookups, feed order and the per-vault uniqueness', async () => {
    expect(await listIndexes(pool, 'records')).toEqual([
      index('idx_records_record_id', ['record_id']),
      index('idx_records_updated_at', ['updated_at']),
      index('idx_records_user_id', ['user_id']),
      index('idx_records_vault_id', ['vault_id']),
      index('idx_records_vault_seq', ['vault_id', 'seq'], true),
      index('records_pkey', ['id'], true, true),
      index('records_vault_id_record_id_unique', ['vault_id', 'record_id'], true),
    ]);
  });
});

describe('constraints', () => {
  test('vaults: primary key and unique user_id', async () => {
    expect((await listConstraints(pool, 'vaults')).map((c) => [c.name, c.type, c.columns])).toEqual([
      ['idx_vaults_user_id', 'u', ['user_id']],
      ['vaults_pkey', 'p', ['id']],
    ]);
  });

  test('records: keys, the cascading foreign key and the tombstone check', async () => {
    const constraints = await listConstraints(pool, 'records');
    expect(constraints.map((c) => [c.name, c.type, c.columns])).toEqual([
      ['idx_records_vault_seq', 'u', ['vault_id', 'seq']],
      ['records_pkey', 'p', ['id']],
      ['records_tombstone_is_empty', 'c', ['ciphertext', 'deleted']],
      ['records_vault_id_fkey', 'f', ['vault_id']],
      ['records_vault_id_record_id_unique', 'u', ['vault_id', 'record_id']],
    ]);

    const fk = constraints.find((c) => c.name === 'records_vault_id_fkey');
    // confdeltype 'c' = ON DELETE CASCADE; 'a' = ON UPDATE NO ACTION (ids never change).
    expect(fk).toMatchObject({ references: 'vaults', onDelete: 'c', onUpdate: 'a' });
    expect(fk?.definition).toBe('FOREIGN KEY (vault_id) REFERENCES vaults(id) ON DELETE CASCADE');

    const check = constraints.find((c) => c.name === 'records_tombstone_is_empty');
    expect(check?.definition).toBe(
      'CHECK (((deleted AND (octet_length(ciphertext) = 0)) OR ((NOT deleted) AND (octet_length(ciphertext) > 0))))',
    );
  });
});

describe('triggers', () => {
  test('exactly the four rule triggers, enabled, with their events', async () => {
    const triggers = await listTriggers(pool);
    expect(triggers.map((t) => [t.table, t.name, t.function, t.enabled])).toEqual([
      ['records', 'records_touch_updated_at', 'vault_db_touch_updated_at', true],
      ['records', 'records_user_id_matches_vault', 'vault_db_check_record_owner', true],
      ['vaults', 'vaults_touch_updated_at', 'vault_db_touch_updated_at', true],
      ['vaults', 'vaults_user_id_immutable', 'vault_db_freeze_vault_user_id', true],
    ]);
    // The timing and the column lists matter: an AFTER trigger could not rewrite updated_at, and
    // the owner check must run on inserts and on moves between vaults, not only on user_id edits.
    expect(Object.fromEntries(triggers.map((t) => [t.name, t.definition]))).toEqual({
      records_touch_updated_at:
        'CREATE TRIGGER records_touch_updated_at BEFORE UPDATE ON public.records FOR EACH ROW EXECUTE FUNCTION vault_db_touch_updated_at()',
      records_user_id_matches_vault:
        'CREATE TRIGGER records_user_id_matches_vault BEFORE INSERT OR UPDATE OF user_id, vault_id ON public.records FOR EACH ROW EXECUTE FUNCTION vault_db_check_record_owner()',
      vaults_touch_updated_at:
        // Moving only the feed counters (every push does) is not a change of the vault itself.
        "CREATE TRIGGER vaults_touch_updated_at BEFORE UPDATE ON public.vaults FOR EACH ROW WHEN (((to_jsonb(old.*) - '{last_seq,purged_seq}'::text[]) IS DISTINCT FROM (to_jsonb(new.*) - '{last_seq,purged_seq}'::text[]))) EXECUTE FUNCTION vault_db_touch_updated_at()",
      vaults_user_id_immutable:
        'CREATE TRIGGER vaults_user_id_immutable BEFORE UPDATE OF user_id ON public.vaults FOR EACH ROW EXECUTE FUNCTION vault_db_freeze_vault_user_id()',
    });
  });

  test('the owner check runs as its owner with a pinned search_path that puts pg_temp last', async () => {
    // Without security definer, row-level security could hide the vault and let a bad user_id in;
    // without pg_temp named last, a caller's temp table `vaults` would be searched first and fool
    // the check (issue #12; the attack itself is in test/security/function-hardening.test.ts).
    expect(Object.keys(await listFunctions(pool))).toEqual([
      'vault_db_check_record_owner',
      'vault_db_current_user',
      'vault_db_freeze_vault_user_id',
      'vault_db_rotate_claim_key',
      'vault_db_set_claim_key',
      'vault_db_touch_updated_at',
    ]);
    const { rows } = await pool.query<{ definer: boolean; config: string[] | null }>(
      `select prosecdef as definer, proconfig as config from pg_proc where proname = 'vault_db_check_record_owner'`,
    );
    expect(rows).toEqual([{ definer: true, config: ['search_path=pg_catalog, pg_temp'] }]);
    expect((await listFunctions(pool)).vault_db_check_record_owner).toContain('from public.vaults v');
  });
});
