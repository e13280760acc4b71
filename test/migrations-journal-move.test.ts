/**
 * vault-db journals its migrations in `vault_db_migrations`, beside (never in) an app's
 * `mikro_orm_migrations`. A database migrated before that table existed has vault-db's rows in
 * `mikro_orm_migrations`: the first run moves exactly those rows, once, under the migration lock
 * (two runs at once move them once), keeps their order, times and checksums, leaves an app's rows
 * where they are, and drops the old table only when nothing of the app's is left in it.
 */
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { runMigrations } from '../src/migrate.js';
import { addJournal, describeCatalog, readJournal, type CatalogDescription } from '../src/schema-check/catalog.js';
import { compareCatalogs } from '../src/schema-check/compare.js';
import { createTestDatabase, type TestDatabase, testPool } from './support/database.js';

const APP_MIGRATION = 'Migration20250101000000_app_bookmarks';
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

let reference: TestDatabase;
let referenceCatalog: CatalogDescription;
beforeAll(async () => {
  reference = await createTestDatabase();
  const pool = testPool(reference.url, 1);
  try {
    referenceCatalog = await catalogOf(pool);
  } finally {
    await pool.end();
  }
});
afterAll(async () => {
  await reference?.drop();
});

async function catalogOf(pool: pg.Pool): Promise<CatalogDescription> {
  const description = await describeCatalog(pool);
  addJournal(description, await readJournal(pool));
  return description;
}

/** A migrated database whose journal is put back where releases before vault_db_migrations kept it. */
async function legacyDatabase(): Promise<{ db: TestDatabase; pool: pg.Pool; journal: { name: string; checksum: string | null; executed_at: Date }[] }> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const pool = testPool(db.url, 2);
  cleanups.push(() => pool.end());
  const { rows: journal } = await pool.query<{ name: string; checksum: string | null; executed_at: Date }>(
    'select name, checksum, executed_at from vault_db_migrations order by id',
  );
  await pool.query('alter table vault_db_migrations rename to mikro_orm_migrations');
  await pool.query('alter table mikro_orm_migrations rename constraint vault_db_migrations_pkey to mikro_orm_migrations_pkey');
  await pool.query('alter index vault_db_migrations_name_unique rename to mikro_orm_migrations_name_unique');
  await pool.query('alter sequence vault_db_migrations_id_seq rename to mikro_orm_migrations_id_seq');
  return { db, pool, journal };
}

async function namesOf(pool: pg.Pool, table: string): Promise<string[] | null> {
  const { rows } = await pool.query<{ present: boolean }>(`select to_regclass($1) is not null as present`, [table]);
  if (!rows[0]?.present) return null;
  return (await pool.query<{ name: string }>(`select name from ${table} order by id`)).rows.map((r) => r.name);
}

async function rowsOf(pool: pg.Pool, table: string): Promise<{ name: string; checksum: string | null; executed_at: Date }[] | null> {
  const { rows } = await pool.query<{ present: boolean }>(`select to_regclass($1) is not null as present`, [table]);
  if (!rows[0]?.present) return null;
  return (await pool.query<{ name: string; checksum: string | null; executed_at: Date }>(`select name, checksum, executed_at from ${table} order by id`)).rows;
}

describe('a journal in mikro_orm_migrations (releases before vault_db_migrations)', () => {
  test('moves into vault_db_migrations once, with order, times and checksums, and the old table goes', async () => {
    const { db, pool, journal } = await legacyDatabase();
    expect(journal.length).toBeGreaterThan(0);

    // Two runs at once: the lock makes one of them move the rows and the other find them moved.
    const runs = await Promise.all([runMigrations({ url: db.url, log: () => {} }), runMigrations({ url: db.url, log: () => {} })]);
    for (const run of runs) {
      expect(run.applied).toEqual([]);
      expect(run.previouslyApplied).toEqual(journal.map((r) => r.name));
    }
    expect(await rowsOf(pool, 'public.vault_db_migrations')).toEqual(journal);
    expect(await rowsOf(pool, 'public.mikro_orm_migrations')).toBeNull();
    expect(compareCatalogs(await catalogOf(pool), referenceCatalog)).toEqual([]);
  });

  test("an app's own rows stay in mikro_orm_migrations, and only vault-db's move", async () => {
    const { db, pool, journal } = await legacyDatabase();
    await pool.query('insert into mikro_orm_migrations (name) values ($1)', [APP_MIGRATION]);

    const report = await runMigrations({ url: db.url, log: () => {} });
    expect(report.applied).toEqual([]);
    expect(report.unknownApplied).toEqual([]);
    expect(await rowsOf(pool, 'public.vault_db_migrations')).toEqual(journal);
    expect(await namesOf(pool, 'public.mikro_orm_migrations')).toEqual([APP_MIGRATION]);

    // Once moved, never again: an app row added later is not vault-db's business.
    await pool.query('insert into mikro_orm_migrations (name) values ($1)', [`${APP_MIGRATION}_2`]);
    expect((await runMigrations({ url: db.url, log: () => {} })).applied).toEqual([]);
    expect(await namesOf(pool, 'public.mikro_orm_migrations')).toEqual([APP_MIGRATION, `${APP_MIGRATION}_2`]);
  });

  test("a fresh database gets vault_db_migrations and no mikro_orm_migrations; an app's journal beside it is left alone", async () => {
    const db = await createTestDatabase({ migrate: false });
    cleanups.push(() => db.drop());
    const pool = testPool(db.url, 1);
    cleanups.push(() => pool.end());
    // The app migrated first, with MikroORM's default journal.
    await pool.query(`create table mikro_orm_migrations ("id" serial primary key, "name" varchar(255), "executed_at" timestamptz default current_timestamp)`);
    await pool.query('insert into mikro_orm_migrations (name) values ($1)', [APP_MIGRATION]);

    const report = await runMigrations({ url: db.url, log: () => {} });
    expect(report.applied.length).toBeGreaterThan(0);
    expect(await namesOf(pool, 'public.vault_db_migrations')).toEqual(report.applied);
    expect(await namesOf(pool, 'public.mikro_orm_migrations')).toEqual([APP_MIGRATION]);
  });
});
