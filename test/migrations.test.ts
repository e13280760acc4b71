/**
 * The migrations and the runner: each migration's down() restores exactly the catalog before its
 * up(); runMigrations() applies only what is pending, each migration in a transaction of its own;
 * a failing migration is rolled back whole while the ones before it stay; and a migration that
 * can't get its table lock gives up after a bounded wait, so it never makes the application's
 * queries queue behind it for long.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { MIGRATIONS_DIR } from '../src/config.js';
import { TransientError } from '../src/errors.js';
import { runMigrations } from '../src/migrate.js';
import { addJournal, describeCatalog, readJournal, type CatalogDescription } from '../src/schema-check/catalog.js';
import { compareCatalogs } from '../src/schema-check/compare.js';
import { createTestDatabase, type TestDatabase, testPool } from './support/database.js';
import { appliedMigrations, listFunctions, listPolicies, listTables, listTriggers } from './support/catalog.js';
import { copyMigrations, ormWithMigrations, type MigrationFolder } from './support/migration-fixtures.js';
import { settle } from './faults/support.js';

/** Every migration in src/migrations, in the order the runner applies them (by timestamped name). */
const MIGRATIONS = readdirSync(MIGRATIONS_DIR)
  .filter((file) => /^Migration\d+\.ts$/.test(file))
  .map((file) => file.replace(/\.ts$/, ''))
  .sort();
const SNAPSHOT = path.join(MIGRATIONS_DIR, '.snapshot-vault-db.json');

/** Every database, pool and folder a test opens, closed after it even when it fails. */
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function freshDatabase(): Promise<{ db: TestDatabase; pool: pg.Pool }> {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  const pool = testPool(db.url, 3);
  cleanups.push(() => pool.end());
  return { db, pool };
}

async function catalogOf(pool: pg.Pool): Promise<CatalogDescription> {
  const description = await describeCatalog(pool);
  addJournal(description, await readJournal(pool));
  return description;
}

async function fixtureFolder(): Promise<MigrationFolder> {
  const folder = await copyMigrations();
  cleanups.push(() => folder.remove());
  return folder;
}

/** The schema produced by the runner on a fresh database: the reference for the round trips. */
let reference: CatalogDescription;
let referenceDb: TestDatabase;
beforeAll(async () => {
  referenceDb = await createTestDatabase();
  const pool = testPool(referenceDb.url, 1);
  try {
    reference = await catalogOf(pool);
  } finally {
    await pool.end();
  }
});
afterAll(async () => { await referenceDb?.drop(); });

test('the migrations found include the two that build the tables and their rules', () => {
  // Guards the list above: an empty or mis-globbed list would make the other tests vacuous.
  expect(MIGRATIONS.slice(0, 2)).toEqual(['Migration20261127113603', 'Migration20261127113700']);
});

describe('down() undoes up()', () => {
  /**
   * Applies the migrations of `dir` one at a time; after each up(n), runs down(n) and compares
   * the catalog with the one before up(n), then applies it again. Returns the differences, each
   * prefixed with the migration that left it.
   */
  async function stepThrough(dir: string): Promise<string[]> {
    const { db, pool } = await freshDatabase();
    const { orm, migrator } = await ormWithMigrations(db.url, dir);
    cleanups.push(() => orm.close(true));
    // A run that applies nothing still creates the journal, which is the runner's, not migration 1's.
    expect(await migrator.up({ migrations: [] })).toEqual([]);
    const problems: string[] = [];
    for (const { name } of await migrator.getPendingMigrations()) {
      const before = await catalogOf(pool);
      expect((await migrator.up({ migrations: [name] })).map((m) => m.name)).toEqual([name]);
      expect(compareCatalogs(await catalogOf(pool), before), `${name} changed nothing`).not.toEqual([]);
      expect((await migrator.down()).map((m) => m.name)).toEqual([name]);
      problems.push(...compareCatalogs(await catalogOf(pool), before).map((line) => `${name}: ${line}`));
      await migrator.up({ migrations: [name] });
    }
    if (dir === MIGRATIONS_DIR) expect(compareCatalogs(await catalogOf(pool), reference)).toEqual([]);
    return problems;
  }

  test('for each migration n, down(n) after up(n) restores exactly the catalog before up(n)', async () => {
    expect(await stepThrough(MIGRATIONS_DIR)).toEqual([]);
  });

  test('the step check catches a down() that forgets to re-create the trigger its up() replaced', async () => {
    const folder = await fixtureFolder();
    // Migration20261127130000's down() drops the trigger with the WHEN clause and re-creates the
    // one it replaced; without the re-creation, the trigger is simply gone after down().
    await folder.edit('Migration20261127130000', (source) => {
      const down = source.indexOf('async down()');
      return source.slice(0, down) + source.slice(down).replace(/\n\s*this\.addSql\(`create trigger[^`]*`\);/, '');
    });
    expect(await stepThrough(folder.dir)).toEqual(['Migration20261127130000: missing trigger public.vaults.vaults_touch_updated_at']);
  });

  test('the step check catches a down() that forgets to disable row-level security', async () => {
    const folder = await fixtureFolder();
    await folder.edit('Migration20261127123000', (source) => source.replace(/\n\s*this\.addSql\(`alter table "records" disable row level security;`\);/, ''));
    expect(await stepThrough(folder.dir)).toEqual(['Migration20261127123000: table public.records: row-level security is "enabled", expected "disabled"']);
  });

  test('down to 0 removes every object, and up again rebuilds the same catalog', async () => {
    const { db, pool } = await freshDatabase();
    const { orm, migrator } = await ormWithMigrations(db.url, MIGRATIONS_DIR);
    cleanups.push(() => orm.close(true));
    expect((await migrator.up()).map((m) => m.name)).toEqual(MIGRATIONS);
    expect(compareCatalogs(await catalogOf(pool), reference)).toEqual([]);
    expect((await migrator.down({ to: 0 })).map((m) => m.name)).toEqual([...MIGRATIONS].reverse());
    expect(await listTables(pool)).toEqual(['vault_db_migrations']);
    expect(await listTriggers(pool)).toEqual([]);
    expect(await listFunctions(pool)).toEqual({});
    expect(await listPolicies(pool)).toEqual([]);
    expect(await appliedMigrations(pool)).toEqual([]);
    expect((await migrator.up()).map((m) => m.name)).toEqual(MIGRATIONS);
    expect(compareCatalogs(await catalogOf(pool), reference)).toEqual([]);
  });
});

describe('runMigrations', () => {
  test('applies every migration with one log line each, then finds nothing to do', async () => {
    const { db, pool } = await freshDatabase();
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);

    const first = await runMigrations({ url: db.url, log });
    expect(first).toMatchObject({ applied: MIGRATIONS, previouslyApplied: [], unknownApplied: [] });
    expect(first.serverVersion).toMatch(/^\d+\.\d+/);
    expect(lines).toEqual(MIGRATIONS.map((name) => `migrated ${name}`));

    const second = await runMigrations({ url: db.url, log });
    expect(second).toMatchObject({ applied: [], previouslyApplied: MIGRATIONS });
    expect(lines).toHaveLength(MIGRATIONS.length);
    expect(await appliedMigrations(pool)).toEqual(MIGRATIONS);
    expect(compareCatalogs(await catalogOf(pool), reference)).toEqual([]);
  });

  test('two concurrent runs on a fresh database apply each migration exactly once in total', async () => {
    const { db, pool } = await freshDatabase();
    const silent = () => {};
    const reports = await Promise.all([runMigrations({ url: db.url, log: silent }), runMigrations({ url: db.url, log: silent })]);

    expect(reports.flatMap((r) => r.applied).sort()).toEqual(MIGRATIONS);
    // The run that waited for the lock found everything already applied.
    expect(reports.map((r) => r.applied.length).sort()).toEqual([0, MIGRATIONS.length]);
    expect(reports.find((r) => r.applied.length === 0)?.previouslyApplied).toEqual(MIGRATIONS);
    expect(await appliedMigrations(pool)).toEqual(MIGRATIONS);
  });

  test('the journal refuses a second row for the same migration', async () => {
    const { db, pool } = await freshDatabase();
    await runMigrations({ url: db.url, log: () => {} });
    await expect(pool.query('insert into vault_db_migrations (name) values ($1)', [MIGRATIONS[0]])).rejects.toMatchObject({ code: '23505' });
  });

  test('never rewrites the migration snapshot, so a drifted database cannot leak into it', async () => {
    const { db, pool } = await freshDatabase();
    const before = await readFile(SNAPSHOT, 'utf8');
    await pool.query('create table stray_table (x int)');

    expect((await runMigrations({ url: db.url, log: () => {} })).applied).toEqual(MIGRATIONS);

    const after = await readFile(SNAPSHOT, 'utf8');
    expect(after).not.toContain('stray_table');
    expect(after).toBe(before);
  });

  test('closes every connection it opened (a serverless database counts them), and names a URL it was given as DATABASE_URL', async () => {
    const { db } = await freshDatabase();
    await runMigrations({ url: db.url, log: () => {} });
    // Asked from a single client, not the pool, so that only runMigrations' sessions could remain.
    const client = new pg.Client(pgConnectionConfig(db.url));
    await client.connect();
    try {
      const others = async () =>
        (await client.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()")).rows[0]?.n;
      // A closed session can linger for a moment in pg_stat_activity; a pool left open stays for good.
      for (let i = 0; i < 50 && (await others()) !== 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await others()).toBe(0);
    } finally {
      await client.end();
    }
    await expect(runMigrations({ url: 'postgres://nobody@127.0.0.1:1/none', log: () => {} })).rejects.toThrow(
      /^DATABASE_URL \(postgres:\/\/nobody@127\.0\.0\.1:1\/none\) refused the connection/,
    );
  });

  test('invalid options are refused with one line naming the option, before connecting', async () => {
    await expect(runMigrations({ url: 'postgres://nobody@127.0.0.1:1/none', ddlLockTimeoutMs: 0 })).rejects.toThrow(/Invalid migration option ddlLockTimeoutMs/);
    await expect(runMigrations({ url: 'postgres://nobody@127.0.0.1:1/none', ddlLockAttempts: Number.NaN })).rejects.toThrow(/ddlLockAttempts/);
    // @ts-expect-error an unknown option
    await expect(runMigrations({ url: 'postgres://nobody@127.0.0.1:1/none', lockTimeout: 5 })).rejects.toThrow(/lockTimeout/);
  });

  describe('a failing migration', () => {
    test('when the first migration fails, no table of it exists and nothing is recorded', async () => {
      const { db, pool } = await freshDatabase();
      // A foreign `records` table makes the initial migration's second `create table` fail, after
      // `vaults` was already created in the same transaction.
      await pool.query('create table records (x int)');
      const lines: string[] = [];

      await expect(runMigrations({ url: db.url, log: (l) => lines.push(l) })).rejects.toThrow(/Migration20261127113603/);

      expect(await listTables(pool)).not.toContain('vaults');
      expect((await appliedMigrations(pool)) ?? []).toEqual([]);
      expect(lines).toEqual([]);
      const { rows } = await pool.query<{ attname: string }>(`select attname from pg_attribute where attrelid = 'public.records'::regclass and attnum > 0`);
      expect(rows.map((r) => r.attname)).toEqual(['x']);
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

      expect(await listTables(pool)).toEqual(['records', 'vault_db_migrations', 'vaults']);
      expect(await appliedMigrations(pool)).toEqual([MIGRATIONS[0]]);
      expect(await listTriggers(pool)).toEqual([]);
      expect(Object.keys(await listFunctions(pool))).toEqual(['vault_db_touch_updated_at']);
      expect(lines).toEqual([`migrated ${MIGRATIONS[0]}`]);

      await pool.query('drop function vault_db_touch_updated_at()');
      const retry = await runMigrations({ url: db.url, log: () => {}, lockTimeoutMs: 5_000 });
      expect(retry.previouslyApplied).toEqual([MIGRATIONS[0]]);
      expect(retry.applied).toEqual(MIGRATIONS.slice(1));
      expect(compareCatalogs(await catalogOf(pool), reference)).toEqual([]);
    });

    test('a migration that fails only at COMMIT (a deferred constraint) is reported as failed, not as migrated', async () => {
      const { db, pool } = await freshDatabase();
      const folder = await fixtureFolder();
      await folder.write(
        'Migration20991231000020',
        `import { Migration } from '@mikro-orm/migrations';
export class Migration20991231000020 extends Migration {
  override async up(): Promise<void> {
    this.addSql('create table fails_at_commit (x int unique deferrable initially deferred);');
    this.addSql('insert into fails_at_commit values (1), (1);');
  }
  override async down(): Promise<void> { this.addSql('drop table fails_at_commit;'); }
}
`,
      );
      const lines: string[] = [];
      const { orm, migrator } = await ormWithMigrations(db.url, folder.dir, { log: (l) => lines.push(l) });
      cleanups.push(() => orm.close(true));
      await expect(migrator.up()).rejects.toThrow(
        /^Migration Migration20991231000020 failed in its transaction \(duplicate key value violates unique constraint .*\(SQLSTATE 23505\)\); it was rolled back, so nothing of Migration20991231000020 is applied\.$/,
      );
      expect(lines).toEqual(MIGRATIONS.map((name) => `migrated ${name}`));
      expect(await appliedMigrations(pool)).toEqual(MIGRATIONS);
      expect(await listTables(pool)).not.toContain('fails_at_commit');
    });
  });

  describe('a migration that waits for a table lock', () => {
    test('gives up after ddlLockTimeoutMs, so writers queued behind it go on; retries; then fails with TransientError, nothing of it applied', async () => {
      const { db, pool } = await freshDatabase();
      await runMigrations({ url: db.url, log: () => {} });
      // Back to before the trigger migration, so the next run must create a trigger on records.
      const { orm, migrator } = await ormWithMigrations(db.url, MIGRATIONS_DIR);
      await migrator.down({ to: MIGRATIONS[1] });
      await orm.close(true);
      const before = await catalogOf(pool);

      // An open transaction that wrote to records (as an app request stuck mid-transaction would):
      // CREATE TRIGGER needs a lock that conflicts with it.
      const holder = await pool.connect();
      cleanups.push(async () => holder.release());
      await holder.query('begin');
      await holder.query('lock table records in row exclusive mode');

      const lines: string[] = [];
      const run = settle(runMigrations({ url: db.url, log: (l) => lines.push(l), ddlLockTimeoutMs: 400, ddlLockAttempts: 3, ddlRetryDelayMs: 200 }));

      // While the migration's lock request is queued, a writer queues behind it. With the
      // bounded wait the migration steps aside and the writer goes on, although the holder is
      // still open; without it, the writer would wait for as long as the holder stays open.
      await waitFor(async () => (await pool.query(`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query ilike '%create trigger%'`)).rowCount === 1);
      const writer = await pool.connect();
      cleanups.push(async () => writer.release());
      const write = writer.query(`update records set record_id = record_id where false`);
      await expect(withDeadline(write, 30_000, 'the writer is still queued behind the migration')).resolves.toBeDefined();

      const outcome = await run;
      expect(outcome.ok).toBe(false);
      const error = outcome.ok ? undefined : outcome.error;
      expect(error).toBeInstanceOf(TransientError);
      expect((error as Error).message).toMatch(/Migration20261127113700 waited more than 400 ms for a table lock in each of 3 attempts, so it was rolled back and nothing of it is applied/);
      expect(lines.filter((l) => l.includes('retrying'))).toHaveLength(2);
      expect(compareCatalogs(await catalogOf(pool), before)).toEqual([]);

      await holder.query('rollback');
      expect((await runMigrations({ url: db.url, log: () => {} })).applied).toEqual(MIGRATIONS.slice(1));
      expect(compareCatalogs(await catalogOf(pool), reference)).toEqual([]);
    });

    test('succeeds on a later attempt when the lock frees up in between', async () => {
      const { db, pool } = await freshDatabase();
      await runMigrations({ url: db.url, log: () => {} });
      const { orm, migrator } = await ormWithMigrations(db.url, MIGRATIONS_DIR);
      await migrator.down({ to: MIGRATIONS[1] });
      await orm.close(true);

      const holder = await pool.connect();
      cleanups.push(async () => holder.release());
      await holder.query('begin');
      await holder.query('lock table records in row exclusive mode');
      const lines: string[] = [];
      const run = runMigrations({ url: db.url, ddlLockTimeoutMs: 300, ddlLockAttempts: 50, ddlRetryDelayMs: 100, log: (l) => {
        lines.push(l);
        // Free the table after the first timed-out attempt.
        if (l.includes('retrying')) void holder.query('rollback').catch(() => {});
      } });
      const report = await run;
      expect(report.applied).toEqual(MIGRATIONS.slice(1));
      expect(lines.some((l) => /Migration20261127113700: a table lock was not free within 300 ms; retrying/.test(l))).toBe(true);
      expect(compareCatalogs(await catalogOf(pool), reference)).toEqual([]);
    });
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); })]).finally(() => clearTimeout(timer));
}
