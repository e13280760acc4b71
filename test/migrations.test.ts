/**
 * The migrations and the runner: they can be reverted and re-applied to the same schema, the
 * runner applies each migration once even when two processes start together, and a failure
 * leaves no half-applied schema behind.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { MikroORM } from '@mikro-orm/postgresql';
import type { Migrator } from '@mikro-orm/migrations';
import { createConfig, MIGRATIONS_DIR } from '../src/config.js';
import { runMigrations } from '../src/migrate.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import {
  appliedMigrations,
  describeSchema,
  listFunctions,
  listPolicies,
  listTables,
  listTriggers,
  type SchemaDescription,
} from './support/catalog.js';

/** Every migration in src/migrations, in the order the runner applies them (by timestamped name). */
const MIGRATIONS = readdirSync(MIGRATIONS_DIR)
  .filter((file) => /^Migration\d+\.ts$/.test(file))
  .map((file) => file.replace(/\.ts$/, ''))
  .sort();
const SNAPSHOT = path.join(MIGRATIONS_DIR, '.snapshot-vault-db.json');

/** Every database and pool a test opens, closed after it even when it fails. */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function freshDatabase(): Promise<{ db: TestDatabase; pool: pg.Pool }> {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  pool.on('error', () => {});
  cleanups.push(() => pool.end());
  return { db, pool };
}

/** The schema produced by the runner on a fresh database: the reference for the round trip. */
let reference: SchemaDescription;
let referenceDb: TestDatabase;
beforeAll(async () => {
  referenceDb = await createTestDatabase();
  const pool = new pg.Pool({ connectionString: referenceDb.url, max: 1 });
  try {
    reference = await describeSchema(pool);
  } finally {
    await pool.end();
  }
});
afterAll(async () => { await referenceDb?.drop(); });

test('the migrations found include the two that build the tables and their rules', () => {
  // Guards the list above: an empty or mis-globbed list would make the other tests vacuous.
  expect(MIGRATIONS.slice(0, 2)).toEqual(['Migration20261127113603', 'Migration20261127113700']);
});

test('up, down to 0, up again: down removes every object and the second up rebuilds the same schema', async () => {
  const { db, pool } = await freshDatabase();
  const config = createConfig(db.url, { pool: { min: 0, max: 2 } });
  // snapshot off: after `down` MikroORM would write an empty schema over the committed
  // src/migrations snapshot, under other test files and the developer's feet.
  const orm = await MikroORM.init({ ...config, migrations: { ...config.migrations, snapshot: false } });
  cleanups.push(() => orm.close(true));
  const migrator = orm.getMigrator() as Migrator;

  expect((await migrator.up()).map((m) => m.name)).toEqual(MIGRATIONS);
  expect(await describeSchema(pool)).toEqual(reference);

  expect((await migrator.down({ to: 0 })).map((m) => m.name)).toEqual([...MIGRATIONS].reverse());
  expect(await listTables(pool)).toEqual(['mikro_orm_migrations']);
  expect(await listTriggers(pool)).toEqual([]);
  expect(await listFunctions(pool)).toEqual({});
  expect(await listPolicies(pool)).toEqual([]);
  expect(await appliedMigrations(pool)).toEqual([]);

  expect((await migrator.up()).map((m) => m.name)).toEqual(MIGRATIONS);
  expect(await describeSchema(pool)).toEqual(reference);
});

describe('runMigrations', () => {
  test('applies every migration with one log line each, then finds nothing to do', async () => {
    const { db, pool } = await freshDatabase();
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);

    const first = await runMigrations({ url: db.url, log });
    expect(first).toMatchObject({ applied: MIGRATIONS, previouslyApplied: [] });
    expect(first.serverVersion).toMatch(/^\d+\.\d+/);
    expect(lines).toEqual(MIGRATIONS.map((name) => `migrated ${name}`));

    const second = await runMigrations({ url: db.url, log });
    expect(second).toMatchObject({ applied: [], previouslyApplied: MIGRATIONS });
    expect(lines).toHaveLength(MIGRATIONS.length);
    expect(await appliedMigrations(pool)).toEqual(MIGRATIONS);
  });

  test('two concurrent runs on a fresh database apply each migration exactly once in total', async () => {
    const { db, pool } = await freshDatabase();
    const silent = () => {};
    // Without the advisory lock, both would see two pending migrations and the slower one would
    // fail on `create table` (or record the migrations twice).
    const reports = await Promise.all([runMigrations({ url: db.url, log: silent }), runMigrations({ url: db.url, log: silent })]);

    expect(reports.flatMap((r) => r.applied).sort()).toEqual(MIGRATIONS);
    // The run that waited for the lock found everything already applied.
    expect(reports.map((r) => r.applied.length).sort()).toEqual([0, MIGRATIONS.length]);
    expect(reports.find((r) => r.applied.length === 0)?.previouslyApplied).toEqual(MIGRATIONS);
    expect(await appliedMigrations(pool)).toEqual(MIGRATIONS);
    expect(await describeSchema(pool)).toEqual(reference);
  });

  test('never rewrites the migration snapshot, so a drifted database cannot leak into it', async () => {
    const { db, pool } = await freshDatabase();
    const before = await readFile(SNAPSHOT, 'utf8');
    // A table that no migration knows: if the runner stored the database's schema as the
    // snapshot, `migration:check` would from then on compare the entities to this drift.
    await pool.query('create table stray_table (x int)');

    expect((await runMigrations({ url: db.url, log: () => {} })).applied).toEqual(MIGRATIONS);

    const after = await readFile(SNAPSHOT, 'utf8');
    expect(after).not.toContain('stray_table');
    expect(after).toBe(before);
  });

  describe('a failing migration leaves nothing half-applied', () => {
    test('when the first migration fails, no table of it exists and nothing is recorded', async () => {
      const { db, pool } = await freshDatabase();
      // A foreign `records` table makes the initial migration's second `create table` fail, after
      // `vaults` was already created in the same transaction.
      await pool.query('create table records (x int)');
      const lines: string[] = [];

      await expect(runMigrations({ url: db.url, log: (l) => lines.push(l) })).rejects.toThrow(/Migration20261127113603/);

      expect(await listTables(pool)).not.toContain('vaults');
      expect(await appliedMigrations(pool) ?? []).toEqual([]);
      expect(lines).toEqual([]);
      // The foreign table is left exactly as it was.
      const { rows } = await pool.query<{ column_name: string }>(
        `select column_name from information_schema.columns where table_schema = 'public' and table_name = 'records'`,
      );
      expect(rows.map((r) => r.column_name)).toEqual(['x']);
    });

    test('when the second migration fails, it is rolled back whole, the first stays applied and recorded, and a retry after the fix finishes', async () => {
      const { db, pool } = await freshDatabase();
      // `create or replace function` can't change a return type, so this makes migration 2 fail
      // after migration 1 committed in a transaction of its own.
      await pool.query('create function vault_db_touch_updated_at() returns integer language sql as $$ select 1 $$');
      const lines: string[] = [];

      await expect(runMigrations({ url: db.url, log: (l) => lines.push(l) })).rejects.toThrow(
        /Migration20261127113700 failed at statement 1 of \d+ .*rolled back, so nothing of Migration20261127113700 is applied/,
      );

      expect(await listTables(pool)).toEqual(['mikro_orm_migrations', 'records', 'vaults']);
      expect(await appliedMigrations(pool)).toEqual([MIGRATIONS[0]]);
      // Nothing of the failed migration: none of its triggers or other functions.
      expect(await listTriggers(pool)).toEqual([]);
      expect(Object.keys(await listFunctions(pool))).toEqual(['vault_db_touch_updated_at']);
      expect(lines).toEqual([`migrated ${MIGRATIONS[0]}`]);

      await pool.query('drop function vault_db_touch_updated_at()');
      const retry = await runMigrations({ url: db.url, log: () => {}, lockTimeoutMs: 5_000 });
      expect(retry.previouslyApplied).toEqual([MIGRATIONS[0]]);
      expect(retry.applied).toEqual(MIGRATIONS.slice(1));
      expect(await describeSchema(pool)).toEqual(reference);
    });
  });
});
