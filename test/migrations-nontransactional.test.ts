/**
 * Non-transactional migrations (`CREATE INDEX CONCURRENTLY`, NOT VALID then VALIDATE), using the
 * two templates of docs/migration-templates as they are: they apply on a fresh database in the
 * same run as the migrations before them, on an existing database with rows (no wait on the
 * runner's own transaction), are recorded exactly once, revert, and finish when run again after
 * the run was killed halfway through building the index.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type pg from 'pg';
import { TransientError } from '../src/errors.js';
import { runMigrations } from '../src/migrate.js';
import { addJournal, describeCatalog, readJournal, type CatalogDescription } from '../src/schema-check/catalog.js';
import { compareCatalogs } from '../src/schema-check/compare.js';
import { terminateBackend } from '../soak/faults.js';
import { settle } from './faults/support.js';
import { PROJECT_ROOT } from './support/cli.js';
import { createTestDatabase, type TestDatabase, testPool } from './support/database.js';
import { copyMigrations, createTableMigration, ormWithMigrations, type MigrationFolder } from './support/migration-fixtures.js';

const INDEX_MIGRATION = 'Migration20991231000001';
const CONSTRAINT_MIGRATION = 'Migration20991231000002';
const AFTER_MIGRATION = 'Migration20991231000003';
const FIXTURES = [INDEX_MIGRATION, CONSTRAINT_MIGRATION, AFTER_MIGRATION];

let folder: MigrationFolder;
let real: string[];
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  folder = await copyMigrations();
  real = await folder.names();
  const template = async (file: string) =>
    (await readFile(path.join(PROJECT_ROOT, 'docs/migration-templates', file), 'utf8')).replace(
      '../migrations-runner/non-transactional-migration.js',
      folder.srcImport('migrations-runner/non-transactional-migration.js'),
    );
  await folder.write(INDEX_MIGRATION, await template('create-index-concurrently.ts'));
  await folder.write(CONSTRAINT_MIGRATION, await template('add-constraint-not-valid.ts'));
  // A transactional migration after them: the runner is back to transactions afterwards.
  await folder.write(AFTER_MIGRATION, createTableMigration(AFTER_MIGRATION, 'after_concurrent'));
});
afterAll(async () => { await folder?.remove(); });
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function database(): Promise<{ db: TestDatabase; pool: pg.Pool }> {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  const pool = testPool(db.url, 3);
  cleanups.push(() => pool.end());
  return { db, pool };
}

async function runFixtures(url: string, log: (line: string) => void = () => {}) {
  const { orm, migrator } = await ormWithMigrations(url, folder.dir, { log });
  try {
    return await migrator.migrate('up');
  } finally {
    await orm.close(true);
  }
}

async function catalogOf(pool: pg.Pool): Promise<CatalogDescription> {
  const description = await describeCatalog(pool);
  addJournal(description, await readJournal(pool));
  return description;
}

async function indexState(pool: pg.Pool): Promise<{ valid: boolean } | undefined> {
  const { rows } = await pool.query<{ valid: boolean }>(`select indisvalid as valid from pg_index where indexrelid = to_regclass('public.idx_records_vault_updated_at')`);
  return rows[0];
}

async function journal(pool: pg.Pool): Promise<string[]> {
  return (await pool.query<{ name: string }>('select name from vault_db_migrations order by id')).rows.map((r) => r.name);
}

/** A vault with `count` records, written with plain SQL as the owner. */
async function addRows(pool: pg.Pool, count: number): Promise<void> {
  const { rows } = await pool.query<{ id: string }>(
    `insert into vaults (user_id, wrapped_key, salt, kdf_params, last_seq) values ('user_nt', '\\x00', '\\x00', '{}', $1) returning id`,
    [count],
  );
  await pool.query(
    `insert into records (user_id, vault_id, record_id, ciphertext, seq)
     select 'user_nt', $1, 'r' || g, '\\x01', g from generate_series(1, $2) g`,
    [rows[0]?.id, count],
  );
}

test('on a fresh database: one run applies the migrations before them, them, and the one after, each recorded once', async () => {
  const { db, pool } = await database();
  const report = await runFixtures(db.url);
  expect(report.applied).toEqual([...real, ...FIXTURES]);
  expect(await journal(pool)).toEqual([...real, ...FIXTURES]);
  expect(await indexState(pool)).toEqual({ valid: true });
  const { rows } = await pool.query(`select convalidated from pg_constraint where conname = 'records_record_id_not_blank'`);
  expect(rows).toEqual([{ convalidated: true }]);
  // And nothing to do the second time.
  expect((await runFixtures(db.url)).applied).toEqual([]);
});

test('on an existing database with rows: no wait on the runner\'s own session, and down() reverts them', async () => {
  const { db, pool } = await database();
  await runMigrations({ url: db.url, log: () => {} });
  await addRows(pool, 500);
  const before = await catalogOf(pool);

  const report = await runFixtures(db.url);
  expect(report.applied).toEqual(FIXTURES);
  expect(await indexState(pool)).toEqual({ valid: true });

  const { orm, migrator } = await ormWithMigrations(db.url, folder.dir);
  try {
    expect((await migrator.down({ to: INDEX_MIGRATION })).map((m) => m.name)).toEqual([...FIXTURES].reverse());
  } finally {
    await orm.close(true);
  }
  expect(compareCatalogs(await catalogOf(pool), before)).toEqual([]);
});

test('killed while building the index: the next run drops the INVALID leftover, builds it, and records the migration once', async () => {
  const { db, pool } = await database();
  await runMigrations({ url: db.url, log: () => {} });
  await addRows(pool, 200);

  // A transaction holding an old snapshot: CREATE INDEX CONCURRENTLY waits for it after it has
  // already made the (still INVALID) index visible in the catalog.
  const blocker = await pool.connect();
  cleanups.push(async () => blocker.release());
  await blocker.query('begin isolation level repeatable read');
  await blocker.query('select count(*) from records');

  const run = settle(runFixtures(db.url));
  let victim: number | undefined;
  for (let i = 0; i < 1500 && victim === undefined; i++) {
    const { rows } = await pool.query<{ pid: number }>(
      `select pid from pg_stat_activity where datname = current_database() and query ilike 'create index concurrently%' and wait_event_type = 'Lock'`,
    );
    victim = rows[0]?.pid;
    if (victim === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(victim, 'CREATE INDEX CONCURRENTLY never waited for the old snapshot').toBeDefined();
  expect(await indexState(pool)).toEqual({ valid: false });
  expect(await terminateBackend(pool, victim as number)).toBe(true);

  const outcome = await run;
  expect(outcome.ok).toBe(false);
  if (!outcome.ok) {
    expect(outcome.error).toBeInstanceOf(TransientError);
    expect((outcome.error as Error).message).toMatch(new RegExp(`${INDEX_MIGRATION} failed at statement 2 of 2 .*outside a transaction, so statements 1 to 1 took effect`));
  }
  expect(await journal(pool)).toEqual(real);
  expect(await indexState(pool)).toEqual({ valid: false });
  await blocker.query('commit');

  const again = await runFixtures(db.url);
  expect(again.applied).toEqual(FIXTURES);
  expect(await indexState(pool)).toEqual({ valid: true });
  expect(await journal(pool)).toEqual([...real, ...FIXTURES]);
  const { rows } = await pool.query(`select count(*)::int as n from pg_class where relname = 'idx_records_vault_updated_at'`);
  expect(rows).toEqual([{ n: 1 }]);
});
