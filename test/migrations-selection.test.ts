/**
 * Which migrations `VaultDbMigrator.up()` and `.down()` touch, through MikroORM's own Migrator
 * API as an app or `mikro-orm migration:up --only/--from/--to` calls it: every way of naming a
 * migration, `from`, `to`, `migrations`, and the refusals of names and options it can't honour.
 * A refused selection changes nothing, so each refusal is checked against the journal too.
 *
 * Three tiny fixture migrations in a folder of their own (none of the package's), on a fresh
 * database per test.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { MikroORM } from '@mikro-orm/postgresql';
import { MigrationRefusedError } from '../src/migrations-runner/errors.js';
import type { VaultDbMigrator } from '../src/migrations-runner/vault-db-migrator.js';
import { createTestDatabase, queryOnce, type TestDatabase } from './support/database.js';
import { copyMigrations, createTableMigration, ormWithMigrations, type MigrationFolder } from './support/migration-fixtures.js';
import { rejectionOf } from './support/rejection.js';

const STAMPS = ['20991231000101', '20991231000102', '20991231000103'];
const [FIRST, SECOND, THIRD] = STAMPS.map((stamp) => `Migration${stamp}`) as [string, string, string];

let folder: MigrationFolder;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  folder = await copyMigrations({ only: () => false });
  for (const [i, name] of [FIRST, SECOND, THIRD].entries()) await folder.write(name, createTableMigration(name, `selection_${i + 1}`));
});
afterAll(async () => { await folder?.remove(); });
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function migratorOn(applied: string[] = []): Promise<{ db: TestDatabase; migrator: VaultDbMigrator }> {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  const { orm, migrator }: { orm: MikroORM; migrator: VaultDbMigrator } = await ormWithMigrations(db.url, folder.dir);
  cleanups.push(() => orm.close(true));
  if (applied.length > 0) await migrator.up({ migrations: applied });
  return { db, migrator };
}

/** The fixture tables that exist, which is what the migrations applied. */
async function tables(db: TestDatabase): Promise<string[]> {
  const rows = await queryOnce<{ name: string }>(db.url, `select relname as name from pg_class where relname like 'selection\\_%' and relkind = 'r' order by 1`);
  return rows.map((r) => r.name);
}

const names = (migrations: { name: string }[]) => migrations.map((m) => m.name);

async function refusal(run: Promise<unknown>): Promise<MigrationRefusedError> {
  const error = await rejectionOf(run);
  expect(error).toBeInstanceOf(MigrationRefusedError);
  return error as MigrationRefusedError;
}

describe('up()', () => {
  test.each([
    ['the class name', FIRST],
    ['the bare timestamp', STAMPS[0]],
    ['the file name (.ts)', `${FIRST}.ts`],
    ['the file name (.js)', `${FIRST}.js`],
  ])('a migration named by %s selects only that migration', async (_how, name) => {
    const { db, migrator } = await migratorOn();
    expect(names(await migrator.up(name as string))).toEqual([FIRST]);
    expect(await tables(db)).toEqual(['selection_1']);
  });

  test('a list of names applies those, in the order they apply, and no other', async () => {
    const { db, migrator } = await migratorOn();
    expect(names(await migrator.up([STAMPS[2] as string, FIRST]))).toEqual([FIRST, THIRD]);
    expect(await tables(db)).toEqual(['selection_1', 'selection_3']);
  });

  test('`from` applies that migration and every later one; `from: 0` means from the first', async () => {
    const { db, migrator } = await migratorOn();
    expect(names(await migrator.up({ from: STAMPS[1] }))).toEqual([SECOND, THIRD]);
    expect(await tables(db)).toEqual(['selection_2', 'selection_3']);

    const other = await migratorOn();
    expect(names(await other.migrator.up({ from: 0 }))).toEqual([FIRST, SECOND, THIRD]);
  });

  test('`to` applies every migration up to and including it', async () => {
    const { db, migrator } = await migratorOn();
    expect(names(await migrator.up({ to: `${SECOND}.ts` }))).toEqual([FIRST, SECOND]);
    expect(await tables(db)).toEqual(['selection_1', 'selection_2']);
  });

  test('a name that is not pending is refused with the pending list, and nothing is applied', async () => {
    const { db, migrator } = await migratorOn([FIRST]);
    for (const run of [() => migrator.up(FIRST), () => migrator.up({ migrations: [SECOND, 'Migration20000101000000'] }), () => migrator.up({ from: 'nope' }), () => migrator.up({ to: FIRST })]) {
      const error = await refusal(run());
      expect(error.reason).toBe('invalid_request');
      expect(error.message).toMatch(/ is not a pending migration \(pending: Migration20991231000102, Migration20991231000103\)\.$/);
      expect(error.migrations).toHaveLength(1);
      expect(error.message.startsWith(`${error.migrations[0]} `)).toBe(true);
    }
    expect(await tables(db)).toEqual(['selection_1']);
  });

  test('with nothing pending, a named migration is refused with "pending: none"', async () => {
    const { migrator } = await migratorOn([FIRST, SECOND, THIRD]);
    const error = await refusal(migrator.up(THIRD));
    expect(error.message).toBe(`${THIRD} is not a pending migration (pending: none).`);
    expect(error.migrations).toEqual([THIRD]);
  });

  test("a caller's transaction is refused: each migration runs in a transaction of its own", async () => {
    const { db, migrator } = await migratorOn();
    const error = await refusal(migrator.up({ transaction: {} as never }));
    expect(error.reason).toBe('invalid_request');
    expect(error.message).toMatch(/can't join a caller's transaction/);
    expect(error.migrations).toEqual([]);
    expect(await tables(db)).toEqual([]);
  });
});

describe('down()', () => {
  test('with no selection, reverts only the last applied migration', async () => {
    const { db, migrator } = await migratorOn([FIRST, SECOND, THIRD]);
    expect(names(await migrator.down())).toEqual([THIRD]);
    expect(await tables(db)).toEqual(['selection_1', 'selection_2']);
  });

  test('a name (in any form) or a list reverts those only, latest first', async () => {
    const { db, migrator } = await migratorOn([FIRST, SECOND, THIRD]);
    expect(names(await migrator.down([STAMPS[0] as string, `${THIRD}.ts`]))).toEqual([THIRD, FIRST]);
    expect(await tables(db)).toEqual(['selection_2']);
  });

  test('`to` reverts down to and including it; `to: 0` reverts everything', async () => {
    const { db, migrator } = await migratorOn([FIRST, SECOND, THIRD]);
    expect(names(await migrator.down({ to: SECOND }))).toEqual([THIRD, SECOND]);
    expect(await tables(db)).toEqual(['selection_1']);
    expect(names(await migrator.down({ to: 0 }))).toEqual([FIRST]);
    expect(await tables(db)).toEqual([]);
  });

  test('a name that is not applied is refused, and nothing is reverted', async () => {
    const { db, migrator } = await migratorOn([FIRST]);
    for (const run of [() => migrator.down(SECOND), () => migrator.down({ to: THIRD }), () => migrator.down({ migrations: [FIRST, THIRD] })]) {
      const error = await refusal(run());
      expect(error.reason).toBe('invalid_request');
      expect(error.message).toBe(`${error.migrations[0]} is not an applied migration.`);
      expect(error.migrations).toHaveLength(1);
      expect([SECOND, THIRD]).toContain(error.migrations[0]);
    }
    expect(await tables(db)).toEqual(['selection_1']);
  });

  test('`from` is refused: down() takes `to` or `migrations`', async () => {
    const { db, migrator } = await migratorOn([FIRST, SECOND]);
    const error = await refusal(migrator.down({ from: FIRST }));
    expect(error.reason).toBe('invalid_request');
    expect(error.message).toBe('down() takes `to` or `migrations`, not `from`.');
    expect(await tables(db)).toEqual(['selection_1', 'selection_2']);
  });
});
