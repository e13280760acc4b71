/**
 * The migrated schema, read back from pg_catalog. The assertions are exact and cover whole lists,
 * so a missing, extra or changed column, index, constraint or trigger fails a test.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { createTestDatabase, type TestDatabase, testPool } from './support/database.js';
import { listColumns, listConstraints, listFunctions, listIndexes, listTables, listTriggers } from './support/catalog.js';

let db: TestDatabase;
let pool: pg.Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  pool = testPool(db.url, 2);
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const column = (name: string, type: string, nullable: boolean, dflt: string | null = null) => ({ name, type, nullable, default: dflt });
const TIMESTAMPTZ = 'timestamp with time zone';

test('public holds exactly the two tables, the staged-rotation tables, the claim key and the migrations log', async () => {
  expect(await listTables(pool)).toEqual(['key_rotations', 'records', 'staged_records', 'vault_db_claim_key', 'vault_db_migrations', 'vaults']);
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
      // Kept by the triggers on records (added later, so after updated_at).
      column('version_floor', 'integer', false, '0'),
      column('key_version', 'integer', false, '1'),
      column('record_count', 'integer', false, '0'),
      column('stored_bytes', 'bigint', false, '0'),
    ]);
  });

  test('key_rotations and staged_records: a staged rotation and its re-encrypted records', async () => {
    expect(await listColumns(pool, 'key_rotations')).toEqual([
      column('id', 'uuid', false, 'gen_random_uuid()'),
      column('user_id', 'text', false),
      column('vault_id', 'uuid', false),
      column('created_at', TIMESTAMPTZ, false, 'now()'),
    ]);
    expect(await listColumns(pool, 'staged_records')).toEqual([
      column('id', 'uuid', false, 'gen_random_uuid()'),
      column('user_id', 'text', false),
      column('rotation_id', 'uuid', false),
      column('record_id', 'text', false),
      column('base_version', 'integer', false),
      column('ciphertext', 'bytea', false),
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
      // No default, and NOT NULL: a raw INSERT without it gets one from a BEFORE trigger.
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

  test('staged rotations: one per vault, one row per record id, RLS lookups by user', async () => {
    expect(await listIndexes(pool, 'key_rotations')).toEqual([
      index('idx_key_rotations_user_id', ['user_id']),
      index('key_rotations_pkey', ['id'], true, true),
      index('key_rotations_vault_id_unique', ['vault_id'], true),
    ]);
    expect(await listIndexes(pool, 'staged_records')).toEqual([
      index('idx_staged_records_user_id', ['user_id']),
      index('staged_records_pkey', ['id'], true, true),
      index('staged_records_rotation_id_record_id_unique', ['rotation_id', 'record_id'], true),
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

describe('constraints of the staged rotation', () => {
  test('both go with their vault: rotation -> vault and staged record -> rotation cascade', async () => {
    expect((await listConstraints(pool, 'key_rotations')).map((c) => [c.name, c.type, c.definition])).toEqual([
      ['key_rotations_pkey', 'p', 'PRIMARY KEY (id)'],
      ['key_rotations_vault_id_fkey', 'f', 'FOREIGN KEY (vault_id) REFERENCES vaults(id) ON DELETE CASCADE'],
      ['key_rotations_vault_id_unique', 'u', 'UNIQUE (vault_id)'],
    ]);
    expect((await listConstraints(pool, 'staged_records')).map((c) => [c.name, c.type, c.definition])).toEqual([
      ['staged_records_pkey', 'p', 'PRIMARY KEY (id)'],
      ['staged_records_rotation_id_fkey', 'f', 'FOREIGN KEY (rotation_id) REFERENCES key_rotations(id) ON DELETE CASCADE'],
      ['staged_records_rotation_id_record_id_unique', 'u', 'UNIQUE (rotation_id, record_id)'],
    ]);
  });

  test('row-level security is on for the staged-rotation tables, with the same policy form as records', async () => {
    const { rows } = await pool.query<{ name: string; enabled: boolean }>(
      `select relname as name, relrowsecurity as enabled from pg_class where relname in ('key_rotations', 'staged_records', 'records') order by 1`,
    );
    expect(rows).toEqual([
      { name: 'key_rotations', enabled: true },
      { name: 'records', enabled: true },
      { name: 'staged_records', enabled: true },
    ]);
    const { rows: policies } = await pool.query<{ table: string; using: string; check: string }>(
      `select tablename as table, qual as using, with_check as check from pg_policies where tablename in ('key_rotations', 'staged_records', 'records') order by 1`,
    );
    const records = policies.find((p) => p.table === 'records');
    expect(policies.map((p) => p.table)).toEqual(['key_rotations', 'records', 'staged_records']);
    for (const policy of policies) expect({ using: policy.using, check: policy.check }).toEqual({ using: records?.using, check: records?.check });
  });
});

describe('triggers', () => {
  test('exactly the rule, feed and counter triggers, enabled, with their events', async () => {
    const triggers = await listTriggers(pool);
    expect(triggers.map((t) => [t.table, t.name, t.function, t.enabled])).toEqual([
      ['records', 'records_count_deletes', 'vault_db_count_deleted_records', true],
      ['records', 'records_count_inserts', 'vault_db_count_inserted_records', true],
      ['records', 'records_count_updates', 'vault_db_count_updated_records', true],
      ['records', 'records_place_raw_insert', 'vault_db_place_raw_insert', true],
      ['records', 'records_place_raw_update', 'vault_db_place_raw_update', true],
      ['records', 'records_record_id_immutable', 'vault_db_freeze_record_id', true],
      ['records', 'records_touch_updated_at', 'vault_db_touch_updated_at', true],
      ['records', 'records_truncate_resync', 'vault_db_resync_on_truncate', true],
      ['records', 'records_user_id_matches_vault', 'vault_db_check_record_owner', true],
      ['vaults', 'vaults_touch_updated_at', 'vault_db_touch_updated_at', true],
      ['vaults', 'vaults_user_id_immutable', 'vault_db_freeze_vault_user_id', true],
    ]);
    // The timing and the column lists matter: an AFTER trigger could not rewrite updated_at, and
    // the owner check must run on inserts and on moves between vaults, not only on user_id edits.
    // The counters are statement-level (once per statement, over transition tables); the raw-writer
    // triggers are row-level with WHEN clauses the service's own writes never meet.
    expect(Object.fromEntries(triggers.map((t) => [t.name, t.definition]))).toEqual({
      records_count_deletes:
        'CREATE TRIGGER records_count_deletes AFTER DELETE ON public.records REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION vault_db_count_deleted_records()',
      records_count_inserts:
        'CREATE TRIGGER records_count_inserts AFTER INSERT ON public.records REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT EXECUTE FUNCTION vault_db_count_inserted_records()',
      records_count_updates:
        'CREATE TRIGGER records_count_updates AFTER UPDATE ON public.records REFERENCING OLD TABLE AS previous_rows NEW TABLE AS updated_rows FOR EACH STATEMENT EXECUTE FUNCTION vault_db_count_updated_records()',
      records_place_raw_insert:
        'CREATE TRIGGER records_place_raw_insert BEFORE INSERT ON public.records FOR EACH ROW WHEN ((new.seq IS NULL)) EXECUTE FUNCTION vault_db_place_raw_insert()',
      records_place_raw_update:
        'CREATE TRIGGER records_place_raw_update BEFORE UPDATE ON public.records FOR EACH ROW WHEN (((NOT (new.seq IS DISTINCT FROM old.seq)) AND ((new.ciphertext IS DISTINCT FROM old.ciphertext) OR (new.deleted IS DISTINCT FROM old.deleted) OR (new.version IS DISTINCT FROM old.version)))) EXECUTE FUNCTION vault_db_place_raw_update()',
      records_record_id_immutable:
        'CREATE TRIGGER records_record_id_immutable BEFORE UPDATE OF record_id ON public.records FOR EACH ROW WHEN ((new.record_id IS DISTINCT FROM old.record_id)) EXECUTE FUNCTION vault_db_freeze_record_id()',
      records_truncate_resync:
        'CREATE TRIGGER records_truncate_resync BEFORE TRUNCATE ON public.records FOR EACH STATEMENT EXECUTE FUNCTION vault_db_resync_on_truncate()',
      records_touch_updated_at:
        'CREATE TRIGGER records_touch_updated_at BEFORE UPDATE ON public.records FOR EACH ROW EXECUTE FUNCTION vault_db_touch_updated_at()',
      records_user_id_matches_vault:
        'CREATE TRIGGER records_user_id_matches_vault BEFORE INSERT OR UPDATE OF user_id, vault_id ON public.records FOR EACH ROW EXECUTE FUNCTION vault_db_check_record_owner()',
      vaults_touch_updated_at:
        // Moving only the counters (every write to records does) is not a change of the vault itself.
        "CREATE TRIGGER vaults_touch_updated_at BEFORE UPDATE ON public.vaults FOR EACH ROW WHEN (((to_jsonb(old.*) - '{last_seq,purged_seq,version_floor,record_count,stored_bytes}'::text[]) IS DISTINCT FROM (to_jsonb(new.*) - '{last_seq,purged_seq,version_floor,record_count,stored_bytes}'::text[]))) EXECUTE FUNCTION vault_db_touch_updated_at()",
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
      'vault_db_count_deleted_records',
      'vault_db_count_inserted_records',
      'vault_db_count_updated_records',
      'vault_db_current_user',
      'vault_db_freeze_record_id',
      'vault_db_freeze_vault_user_id',
      'vault_db_place_raw_insert',
      'vault_db_place_raw_update',
      'vault_db_resync_on_truncate',
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

test('the feed and counter functions pin search_path with pg_temp last, qualify their tables, and are not SECURITY DEFINER', async () => {
  const names = [
    'vault_db_count_deleted_records',
    'vault_db_count_inserted_records',
    'vault_db_count_updated_records',
    'vault_db_freeze_record_id',
    'vault_db_place_raw_insert',
    'vault_db_place_raw_update',
    'vault_db_resync_on_truncate',
  ];
  const { rows } = await pool.query<{ name: string; definer: boolean; config: string[] | null; body: string }>(
    'select proname as name, prosecdef as definer, proconfig as config, prosrc as body from pg_proc where proname = any($1) order by 1',
    [names],
  );
  expect(rows.map((r) => r.name)).toEqual(names);
  for (const row of rows) {
    expect({ name: row.name, definer: row.definer, config: row.config }).toEqual({ name: row.name, definer: false, config: ['search_path=pg_catalog, pg_temp'] });
    // Every table is named with its schema, so nothing in a caller's search_path can shadow it.
    const code = row.body.replace(/--[^\n]*/g, '');
    expect(code.match(/\b(?:from|update|join)\s+(?!public\.)(?!inserted_rows|updated_rows|previous_rows|deleted_rows|added|moved|delta|gone|\()([a-z_]+)/gi), row.name).toBeNull();
  }
});
