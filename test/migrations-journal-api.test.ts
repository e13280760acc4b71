/**
 * The read side of `VaultDbMigrator`, as `mikro-orm migration:list` / `migration:pending` and an
 * app's health check call it: `getExecutedMigrations()` and `getPendingMigrations()` read the
 * journal without creating it, and a journal table named with a schema
 * (`migrations.tableName: 'ops.schema_journal'`) is where both the runner and these reads go.
 *
 * Three tiny fixture migrations in a folder of their own, on a fresh database per test.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { MigrationRefusedError } from '../src/migrations-runner/errors.js';
import type { VaultDbMigrator } from '../src/migrations-runner/vault-db-migrator.js';
import { createTestDatabase, queryOnce, type TestDatabase } from './support/database.js';
import { copyMigrations, createTableMigration, ormWithMigrations, type MigrationFolder } from './support/migration-fixtures.js';
import { rejectionOf } from './support/rejection.js';

const NAMES = ['Migration20991231000201', 'Migration20991231000202', 'Migration20991231000203'] as const;
const [FIRST, SECOND, THIRD] = NAMES;

let folder: MigrationFolder;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  folder = await copyMigrations({ only: () => false });
  for (const [i, name] of NAMES.entries()) await folder.write(name, createTableMigration(name, `journal_api_${i + 1}`));
});
afterAll(async () => { await folder?.remove(); });
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  return db;
}

async function migratorOn(db: TestDatabase, options: Parameters<typeof ormWithMigrations>[2] = {}, journalTable?: string): Promise<VaultDbMigrator> {
  const { orm, migrator } = await ormWithMigrations(db.url, folder.dir, options, journalTable);
  cleanups.push(() => orm.close(true));
  return migrator;
}

/** A table's OID as text, or null when there is no such table. */
async function regclass(db: TestDatabase, table: string): Promise<string | null> {
  const [row] = await queryOnce<{ t: string | null }>(db.url, 'select to_regclass($1)::text as t', [table]);
  return row?.t ?? null;
}

describe('getExecutedMigrations() and getPendingMigrations()', () => {
  test('on a database never migrated: nothing executed, everything pending in order, and no journal created', async () => {
    const db = await freshDatabase();
    const migrator = await migratorOn(db);
    expect(await migrator.getExecutedMigrations()).toEqual([]);
    expect((await migrator.getPendingMigrations()).map((m) => m.name)).toEqual([FIRST, SECOND, THIRD]);
    expect(await regclass(db, 'public.vault_db_migrations')).toBeNull();
  });

  test('after two migrations: those two executed in order (times as Dates), the third pending', async () => {
    const db = await freshDatabase();
    const migrator = await migratorOn(db);
    const before = Date.now();
    await migrator.up({ to: SECOND });
    const executed = await migrator.getExecutedMigrations();
    expect(executed.map((row) => row.name)).toEqual([FIRST, SECOND]);
    for (const row of executed) {
      expect(row.executed_at).toBeInstanceOf(Date);
      // The server's clock, which is this machine's: within a minute of the run either way.
      expect(Math.abs(row.executed_at.getTime() - before)).toBeLessThan(60_000);
    }
    const pending = await migrator.getPendingMigrations();
    expect(pending.map((m) => m.name)).toEqual([THIRD]);
    expect(pending[0]!.path).toMatch(new RegExp(`${THIRD}\\.ts$`));
  });

  test('after a rollback the reverted migration is pending again', async () => {
    const db = await freshDatabase();
    const migrator = await migratorOn(db);
    await migrator.up();
    await migrator.down();
    expect((await migrator.getExecutedMigrations()).map((row) => row.name)).toEqual([FIRST, SECOND]);
    expect((await migrator.getPendingMigrations()).map((m) => m.name)).toEqual([THIRD]);
  });
});

describe('what a run reports', () => {
  test('a line per migration applied and reverted, in order, through the log option', async () => {
    const db = await freshDatabase();
    const lines: string[] = [];
    const migrator = await migratorOn(db, { log: (line) => lines.push(line) });
    await migrator.up();
    await migrator.down({ to: SECOND });
    expect(lines).toEqual([`migrated ${FIRST}`, `migrated ${SECOND}`, `migrated ${THIRD}`, `reverted ${THIRD}`, `reverted ${SECOND}`]);
  });

  test("down() over an applied migration this code doesn't have refuses, naming it, and reverts nothing", async () => {
    const db = await freshDatabase();
    const lines: string[] = [];
    // 'warn' lets the run start with an unknown migration applied; reverting it is another matter.
    const migrator = await migratorOn(db, { onUnknownMigrations: 'warn', log: (line) => lines.push(line) });
    await migrator.up();
    const newer = 'Migration20991231000299';
    await queryOnce(db.url, 'insert into vault_db_migrations (name) values ($1)', [newer]);
    const error = await rejectionOf(migrator.down());
    expect(error).toBeInstanceOf(MigrationRefusedError);
    expect((error as MigrationRefusedError).message).toBe(`Can't revert ${newer}: this code doesn't have it.`);
    expect((error as MigrationRefusedError).reason).toBe('invalid_request');
    expect((error as MigrationRefusedError).migrations).toEqual([newer]);
    expect((await migrator.getExecutedMigrations()).map((row) => row.name)).toEqual([FIRST, SECOND, THIRD, newer]);
    expect(await regclass(db, 'journal_api_3')).toBe('journal_api_3');
    expect(lines.filter((line) => line.startsWith('reverted'))).toEqual([]);
  });

  test('a migration file that exports no class stops the run at it, naming the file; the ones before it stay applied', async () => {
    const db = await freshDatabase();
    const broken = await copyMigrations({ only: () => false });
    cleanups.push(() => broken.remove());
    await broken.write(FIRST, createTableMigration(FIRST, 'journal_api_1'));
    const named = 'Migration20991231000250';
    await broken.write(named, 'export const notAMigration = 1;\n');
    const { orm, migrator } = await ormWithMigrations(db.url, broken.dir);
    cleanups.push(() => orm.close(true));

    const error = await rejectionOf(migrator.up());
    expect((error as Error).message).toBe(`${broken.dir}/${named}.ts exports no migration class`);
    expect((await migrator.getExecutedMigrations()).map((row) => row.name)).toEqual([FIRST]);
  });
});

describe('a journal table named with a schema', () => {
  test("the runner creates the schema and journals there, and the reads find it; public's default journal is never made", async () => {
    const db = await freshDatabase();
    const migrator = await migratorOn(db, {}, 'ops.schema_journal');
    expect(await migrator.getExecutedMigrations()).toEqual([]);
    expect((await migrator.up()).map((m) => m.name)).toEqual([FIRST, SECOND, THIRD]);
    expect(await regclass(db, 'ops.schema_journal')).toBe('ops.schema_journal');
    expect(await regclass(db, 'public.vault_db_migrations')).toBeNull();
    expect(await regclass(db, 'public.schema_journal')).toBeNull();
    const rows = await queryOnce<{ name: string }>(db.url, 'select name from ops.schema_journal order by id');
    expect(rows.map((r) => r.name)).toEqual([FIRST, SECOND, THIRD]);
    expect((await migrator.getExecutedMigrations()).map((row) => row.name)).toEqual([FIRST, SECOND, THIRD]);
    expect(await migrator.getPendingMigrations()).toEqual([]);
    // A second run finds the journal where the first left it: nothing to apply.
    expect(await migrator.up()).toEqual([]);
  });

  test('a bare table name goes into public', async () => {
    const db = await freshDatabase();
    const migrator = await migratorOn(db, {}, 'my_journal');
    await migrator.up({ to: FIRST });
    expect(await regclass(db, 'public.my_journal')).toBe('my_journal');
    expect((await migrator.getExecutedMigrations()).map((row) => row.name)).toEqual([FIRST]);
  });
});
