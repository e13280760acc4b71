/**
 * `this.execute(sql, params)` inside a migration, as MikroORM documents it for data migrations
 * (read rows, then queue statements from them): the same `?` and `??` placeholders and the same
 * rows in a transactional migration (run in the migration's transaction, so a later failure takes
 * its writes back) and in a `NonTransactionalMigration` (run on the runner's locked session, each
 * statement committing by itself).
 *
 * Fixture migrations in a folder of their own, on a fresh database per test.
 */
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { DatabaseError, TransientError } from '../src/errors.js';
import { createTestDatabase, queryOnce, type TestDatabase } from './support/database.js';
import { copyMigrations, createTableMigration, ormWithMigrations, type MigrationFolder } from './support/migration-fixtures.js';
import { rejectionOf } from './support/rejection.js';
import type { VaultDbMigrator } from '../src/migrations-runner/vault-db-migrator.js';

const TABLE = 'Migration20991231000301';
const TRANSACTIONAL = 'Migration20991231000302';
const OUTSIDE = 'Migration20991231000303';
const FAILING = 'Migration20991231000304';
const FAILING_OUTSIDE = 'Migration20991231000305';
const LOCKED_OUTSIDE = 'Migration20991231000306';

let folder: MigrationFolder;
const cleanups: (() => Promise<unknown>)[] = [];

/** A fixture migration's source: `up` and `down` are method bodies; `outside` makes it a NonTransactionalMigration. */
function migration(name: string, options: { outside?: boolean; up: string; down?: string }): string {
  const [base, from] = options.outside
    ? ['NonTransactionalMigration', folder.srcImport('migrations-runner/non-transactional-migration.js')]
    : ['Migration', '@mikro-orm/migrations'];
  return `import { ${base} } from '${from}';
export class ${name} extends ${base} {
  override async up(): Promise<void> {${options.up}
  }
  override async down(): Promise<void> {${options.down ?? ''}}
}
`;
}

beforeAll(async () => {
  folder = await copyMigrations({ only: () => false });
  await folder.write(TABLE, createTableMigration(TABLE, 'exec_log', '(n int, source text)'));
  // Reads rows through execute() with "?" values and a "??" identifier, then queues a statement
  // per row; writes one row through execute() itself.
  const body = (source: string, first: number) => `
    const rows = await this.execute('select ?::int as ?? union all select ?::int', [${first}, 'n', ${first + 1}]);
    for (const row of rows as { n: number }[]) this.addSql(\`insert into exec_log values (\${row.n}, '${source}');\`);
    await this.execute('insert into exec_log values (?, ?)', [${first * 10}, '${source}-execute']);`;
  const undo = (source: string) => ` this.addSql("delete from exec_log where source like '${source}%';"); `;
  await folder.write(TRANSACTIONAL, migration(TRANSACTIONAL, { up: body('transactional', 1), down: undo('transactional') }));
  await folder.write(OUTSIDE, migration(OUTSIDE, { outside: true, up: body('outside', 3), down: undo('outside') }));
  // Writes through execute(), then a statement fails: the write goes with the transaction.
  await folder.write(FAILING, migration(FAILING, {
    up: `
    await this.execute('insert into exec_log values (?, ?)', [99, 'failing-execute']);
    this.addSql('select 1 / 0;');`,
  }));
  // Outside a transaction: the first execute() commits, the second fails.
  await folder.write(FAILING_OUTSIDE, migration(FAILING_OUTSIDE, {
    outside: true,
    up: `
    await this.execute('insert into exec_log values (?, ?)', [77, 'failing-outside-execute']);
    await this.execute('select 1 / 0');
    this.addSql('create table never_created (x int);');`,
  }));
  // Outside a transaction, a statement that can't have its table lock within its lock_timeout.
  await folder.write(LOCKED_OUTSIDE, migration(LOCKED_OUTSIDE, {
    outside: true,
    up: `
    this.addSql("insert into exec_log values (66, 'locked-outside');");
    this.addSql("do $$ begin perform pg_catalog.set_config('lock_timeout', '200ms', true); lock table exec_log in access exclusive mode; end $$;");`,
  }));
});
afterAll(async () => { await folder?.remove(); });
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

/** A fresh database migrated up to `to` (inclusive), and the migrator that did it. */
async function migrated(to: string): Promise<{ db: TestDatabase; migrator: VaultDbMigrator }> {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  const { orm, migrator } = await ormWithMigrations(db.url, folder.dir);
  cleanups.push(() => orm.close(true));
  await migrator.up({ to });
  return { db, migrator };
}

async function log(db: TestDatabase): Promise<string[]> {
  const rows = await queryOnce<{ n: number; source: string }>(db.url, 'select n, source from exec_log order by source, n');
  return rows.map((r) => `${r.n} ${r.source}`);
}

test('in a transactional migration and in a NonTransactionalMigration: the same placeholders, the same rows', async () => {
  const { db } = await migrated(OUTSIDE);
  expect(await log(db)).toEqual(['3 outside', '4 outside', '30 outside-execute', '1 transactional', '2 transactional', '10 transactional-execute']);
});

test("a transactional migration's execute() writes are rolled back with it when a later statement fails", async () => {
  const { db, migrator } = await migrated(OUTSIDE);
  const error = await rejectionOf(migrator.up());
  expect(error).toBeInstanceOf(DatabaseError);
  expect((error as Error).message).toMatch(new RegExp(`^Migration ${FAILING} failed at statement 1 of 1 \\(select 1 / 0;\\): division by zero`));
  expect(await log(db)).not.toContain('99 failing-execute');
  expect((await migrator.getExecutedMigrations()).map((row) => row.name)).toEqual([TABLE, TRANSACTIONAL, OUTSIDE]);
});

test("a NonTransactionalMigration whose execute() fails: DatabaseError naming it, earlier execute() writes kept, not recorded, no statement run", async () => {
  const { db, migrator } = await migrated(OUTSIDE);
  const error = await rejectionOf(migrator.up({ migrations: [FAILING_OUTSIDE] }));
  expect(error).toBeInstanceOf(DatabaseError);
  expect((error as Error).message).toBe(
    `Migration ${FAILING_OUTSIDE} failed in its up() code (division by zero (SQLSTATE 22012)); it runs outside a transaction, ` +
      'so its execute() calls before the failure took effect, and it is not recorded.',
  );
  expect(await log(db)).toContain('77 failing-outside-execute');
  const [table] = await queryOnce<{ t: string | null }>(db.url, "select to_regclass('never_created')::text as t");
  expect(table?.t).toBeNull();
  expect((await migrator.getExecutedMigrations()).map((row) => row.name)).toEqual([TABLE, TRANSACTIONAL, OUTSIDE]);
});

test('a NonTransactionalMigration statement that times out on a table lock: TransientError, the statements before it kept, not recorded', async () => {
  const { db, migrator } = await migrated(OUTSIDE);
  const holder = new pg.Client(pgConnectionConfig(db.url));
  await holder.connect();
  cleanups.push(() => holder.end());
  await holder.query('begin');
  // SHARE UPDATE EXCLUSIVE: statement 1's insert goes through, statement 2's ACCESS EXCLUSIVE can't.
  await holder.query('lock table exec_log in share update exclusive mode');
  const error = await rejectionOf(migrator.up({ migrations: [LOCKED_OUTSIDE] }));
  await holder.query('rollback');
  expect(error).toBeInstanceOf(TransientError);
  expect((error as Error).message).toMatch(
    new RegExp(`^A table lock was not free in time: ${LOCKED_OUTSIDE} failed at statement 2 of 2 \\(do .*\\): canceling statement due to lock timeout \\(SQLSTATE 55P03\\); it runs outside a transaction, so statements 1 to 1 took effect;.* Run the migrations again\\.$`),
  );
  expect(await log(db)).toContain('66 locked-outside');
  expect((await migrator.getExecutedMigrations()).map((row) => row.name)).toEqual([TABLE, TRANSACTIONAL, OUTSIDE]);
});
