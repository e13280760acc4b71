/**
 * Version skew between the code and the database: a database ahead of the code (a newer release
 * migrated it, then the code was rolled back) is refused by default, or let through with a warning
 * when configured; an applied migration edited afterwards is refused by its checksum; journals
 * from before checksums and the unique index are completed in place; a journal listing a
 * migration twice is refused with the fix.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import type pg from 'pg';
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig, MIGRATIONS_DIR } from '../src/config.js';
import { MigrationRefusedError, runMigrations } from '../src/migrate.js';
import { fingerprint } from '../src/migrations-runner/checksum.js';
import { addJournal, describeCatalog, readJournal, type CatalogDescription } from '../src/schema-check/catalog.js';
import { compareCatalogs } from '../src/schema-check/compare.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase, testPool } from './support/database.js';
import { copyMigrations, ormWithMigrations, type MigrationFolder } from './support/migration-fixtures.js';
import { rejectionOf } from './support/rejection.js';

const UNKNOWN = 'Migration20991231235959';
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

let real: string[];
let referenceJournal: { name: string; checksum: string | null }[];
let referenceDb: TestDatabase;
beforeAll(async () => {
  referenceDb = await createTestDatabase();
  const pool = testPool(referenceDb.url, 1);
  try {
    referenceJournal = (await readJournal(pool)) ?? [];
  } finally {
    await pool.end();
  }
  real = referenceJournal.map((r) => r.name);
});
afterAll(async () => { await referenceDb?.drop(); });

async function migrated(): Promise<{ db: TestDatabase; pool: pg.Pool }> {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const pool = testPool(db.url, 2);
  cleanups.push(() => pool.end());
  return { db, pool };
}

async function catalogOf(pool: pg.Pool): Promise<CatalogDescription> {
  const description = await describeCatalog(pool);
  addJournal(description, await readJournal(pool));
  return description;
}

async function refusal(promise: Promise<unknown>): Promise<MigrationRefusedError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(MigrationRefusedError);
  return error as MigrationRefusedError;
}

describe('a database ahead of the code', () => {
  test('runMigrations refuses by default, naming the unknown migration, and changes nothing', async () => {
    const { db, pool } = await migrated();
    await pool.query('insert into vault_db_migrations (name) values ($1)', [UNKNOWN]);
    const before = await catalogOf(pool);

    const error = await refusal(runMigrations({ url: db.url, log: () => {} }));
    expect(error).toMatchObject({ code: 'migration_refused', reason: 'unknown_applied', migrations: [UNKNOWN] });
    expect(error.message).toMatch(new RegExp(`doesn't have: ${UNKNOWN} .*No migration was applied or reverted.*onUnknownMigrations: 'warn'`));
    expect(compareCatalogs(await catalogOf(pool), before)).toEqual([]);
  });

  test("with onUnknownMigrations: 'warn' it logs one warning, applies what is pending and reports the unknown ones", async () => {
    const { db, pool } = await migrated();
    const { orm, migrator } = await ormWithMigrations(db.url, MIGRATIONS_DIR);
    await migrator.down({ to: real[1] });
    await orm.close(true);
    await pool.query('insert into vault_db_migrations (name) values ($1)', [UNKNOWN]);
    const lines: string[] = [];

    const report = await runMigrations({ url: db.url, log: (l) => lines.push(l), onUnknownMigrations: 'warn' });
    expect(report.applied).toEqual(real.slice(1));
    expect(report.unknownApplied).toEqual([UNKNOWN]);
    expect(lines.filter((l) => l.startsWith('warning:'))).toEqual([expect.stringContaining(UNKNOWN)]);
  });

  test('npm run db:migrate refuses in one line; VAULT_DB_UNKNOWN_MIGRATIONS=warn lets it go on', async () => {
    const { db, pool } = await migrated();
    await pool.query('insert into vault_db_migrations (name) values ($1)', [UNKNOWN]);
    const [refused, warned] = await Promise.all([
      runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: db.url }, 120_000),
      runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: db.url, VAULT_DB_UNKNOWN_MIGRATIONS: 'warn' }, 120_000),
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^vault-db: The database lists 1 applied migration\\(s\\) this code doesn't have: ${UNKNOWN}`))]);
    expect(warned.code, warned.stderr).toBe(0);
    expect(warned.stdout).toContain(`warning: The database lists 1 applied migration(s) this code doesn't have: ${UNKNOWN}`);
  });

  test('an invalid VAULT_DB_UNKNOWN_MIGRATIONS is refused in one line', async () => {
    const result = await runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: inject('serverUrl'), VAULT_DB_UNKNOWN_MIGRATIONS: 'ignore' }, 120_000);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/VAULT_DB_UNKNOWN_MIGRATIONS="ignore" is not valid/);
  });
});

describe('checksums', () => {
  /** A folder of its own per test: Node caches a migration module by its path. */
  async function folderCopy(): Promise<MigrationFolder> {
    const folder = await copyMigrations();
    cleanups.push(() => folder.remove());
    return folder;
  }

  test('an applied migration whose statements changed is refused, naming it; nothing changes', async () => {
    const { db, pool } = await migrated();
    const folder = await folderCopy();
    const edited = real[2] as string;
    await folder.edit(edited, (s) => s.replace(/\n\s*this\.addSql\(`[^`]*`\);/, '\n    this.addSql(`select 1;`);'));
    const before = await catalogOf(pool);

    const { orm, migrator } = await ormWithMigrations(db.url, folder.dir);
    cleanups.push(() => orm.close(true));
    const error = await refusal(migrator.up());
    expect(error).toMatchObject({ reason: 'checksum_mismatch', migrations: [edited] });
    expect(error.message).toMatch(new RegExp(`changed since they were applied: ${edited} \\(recorded [0-9a-f]{12}…, now [0-9a-f]{12}…\\)`));
    expect(compareCatalogs(await catalogOf(pool), before)).toEqual([]);
  });

  test('comments and formatting of the file are not a change; only the statements count', async () => {
    const { db } = await migrated();
    const folder = await folderCopy();
    const name = real[1] as string;
    await folder.edit(name, (s) => s.replace('export class', '// Reviewed again; nothing changed.\n\nexport class').replace(/override async up\(\)/, 'override   async up()'));
    const { orm, migrator } = await ormWithMigrations(db.url, folder.dir);
    cleanups.push(() => orm.close(true));
    expect(await migrator.up()).toEqual([]);
  });

  test('a migration has the same checksum from its TypeScript source and compiled to JavaScript (dist)', async () => {
    const folder = await folderCopy();
    const name = real[1] as string;
    const source = await readFile(path.join(MIGRATIONS_DIR, `${name}.ts`), 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const jsFile = path.join(folder.dir, `${name}.compiled.mjs`);
    await writeFile(jsFile, js);
    const orm = await MikroORM.init(createConfig(inject('serverUrl'), { pool: { min: 0, max: 1 } }));
    cleanups.push(() => orm.close(true));
    const instance = async (file: string) => {
      const module = (await import(file)) as Record<string, new (...args: unknown[]) => never>;
      const Class = Object.values(module)[0] as new (driver: unknown, config: unknown) => Parameters<typeof fingerprint>[0];
      return new Class(orm.em.getDriver(), orm.config);
    };
    const fromTs = await fingerprint(await instance(path.join(MIGRATIONS_DIR, `${name}.ts`)));
    const fromJs = await fingerprint(await instance(jsFile));
    expect(fromJs.checksum).toBe(fromTs.checksum);
    expect(referenceJournal.find((r) => r.name === name)?.checksum).toBe(fromTs.checksum);
  });
});

describe('journals from before this runner', () => {
  test('a journal without checksums and without the unique index is completed in place', async () => {
    const { db, pool } = await migrated();
    await pool.query('drop index vault_db_migrations_name_unique');
    await pool.query('alter table vault_db_migrations drop column checksum');
    const lines: string[] = [];

    expect((await runMigrations({ url: db.url, log: (l) => lines.push(l) })).applied).toEqual([]);
    expect(lines).toEqual([`recorded the checksums of ${real.length} migration(s) applied before checksums existed`]);
    expect(await readJournal(pool)).toEqual(referenceJournal);
    const fresh = testPool(referenceDb.url, 1);
    try {
      expect(compareCatalogs(await catalogOf(pool), await catalogOf(fresh))).toEqual([]);
    } finally {
      await fresh.end();
    }
  });

  test('a journal that lists a migration twice (an old race) is refused with the fix, and nothing changes', async () => {
    const { db, pool } = await migrated();
    await pool.query('drop index vault_db_migrations_name_unique');
    await pool.query('insert into vault_db_migrations (name) values ($1)', [real[0]]);
    const error = await refusal(runMigrations({ url: db.url, log: () => {} }));
    expect(error).toMatchObject({ reason: 'journal_duplicates', migrations: [real[0]] });
    expect(error.message).toMatch(/delete the later row of each \(highest id\)/);
    const { rows } = await pool.query(`select 1 from pg_indexes where indexname = 'vault_db_migrations_name_unique'`);
    expect(rows).toEqual([]);
  });
});
