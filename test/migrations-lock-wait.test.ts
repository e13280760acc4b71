/**
 * The migration lock's wait and the migration connection, from outside: a run that finds the lock
 * held by another session for longer than `lockTimeoutMs` gives up with a `TransientError` that
 * names the wait and the lock to look for in `pg_locks`, and applies nothing; a run that can't
 * connect says so with the URL's password redacted. A table lock that another session holds on
 * the journal is waited for, retried and given up under the name of the step that waited
 * ("creating the migration journal", "recording checksums"), so the log and the error say which.
 */
import { afterEach, expect, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { createConfig } from '../src/config.js';
import { runMigrations } from '../src/migrate.js';
import { pgConnectionConfig } from '../src/connection-options.js';
import { TransientError } from '../src/errors.js';
import { MIGRATION_LOCK_KEY } from '../src/migrations-runner/lock.js';
import type { VaultDbMigrator } from '../src/migrations-runner/vault-db-migrator.js';
import { createTestDatabase, queryOnce } from './support/database.js';
import { ormWithMigrations, copyMigrations } from './support/migration-fixtures.js';
import { rejectionOf } from './support/rejection.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function failure(run: Promise<unknown>): Promise<Error> {
  const error = await rejectionOf(run);
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

test('a lock held past lockTimeoutMs: TransientError naming the wait and the advisory lock, and nothing applied', async () => {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  const holder = new pg.Client(pgConnectionConfig(db.url));
  await holder.connect();
  cleanups.push(() => holder.end());
  await holder.query('select pg_advisory_lock($1::int8)', [MIGRATION_LOCK_KEY]);
  const folder = await copyMigrations();
  cleanups.push(() => folder.remove());
  const { orm, migrator } = await ormWithMigrations(db.url, folder.dir, { lockTimeoutMs: 300 });
  cleanups.push(() => orm.close(true));

  const error = await failure(migrator.up());
  expect(error).toBeInstanceOf(TransientError);
  expect(error.message).toBe(
    "Another process has held the migration lock for more than 300 ms (a migration run still going, or hung); retry later. " +
      `It is the session in pg_locks with locktype 'advisory' and objid ${BigInt(MIGRATION_LOCK_KEY) & 0xffffffffn}.`,
  );
  const tables = await queryOnce<{ n: number }>(db.url, "select count(*)::int as n from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace");
  expect(tables[0]?.n).toBe(0);

  // Released, the same migrator runs.
  await holder.query('select pg_advisory_unlock($1::int8)', [MIGRATION_LOCK_KEY]);
  expect((await migrator.up()).length).toBe((await folder.names()).length);
});

test('no server at the URL: TransientError saying it could not connect, password redacted', async () => {
  // `connect: false`: MikroORM.init would otherwise fail first, before the migrator is reached.
  const orm = await MikroORM.init(createConfig('postgres://someone:s3cret-pw@127.0.0.1:1/nowhere', { connect: false }));
  cleanups.push(() => orm.close(true));

  const error = await failure((orm.migrator as VaultDbMigrator).up());
  expect(error).toBeInstanceOf(TransientError);
  expect(error.message).toMatch(/^Could not connect to migrate postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/nowhere: .+\.$/);
  expect(error.message).not.toContain('s3cret-pw');
});

/** A session of its own on `url` that holds `sql`'s locks in an open transaction until it is ended. */
async function holding(url: string, sql: string): Promise<pg.Client> {
  const holder = new pg.Client(pgConnectionConfig(url));
  await holder.connect();
  cleanups.push(() => holder.end());
  await holder.query('begin');
  await holder.query(sql);
  return holder;
}

const shortWaits = { ddlLockTimeoutMs: 200, ddlLockAttempts: 2, ddlRetryDelayMs: 10 };

/** The error of a step that waited out `shortWaits`; no migration was applied before it. */
const gaveUp = (what: string) =>
  `${what} waited more than 200 ms for a table lock in each of 2 attempts, so it was rolled back and nothing of it is applied: ` +
  "a long-running transaction holds the table (look for old xact_start or 'idle in transaction' in pg_stat_activity). Retry later.";

test("a journal another transaction reads: 'creating the migration journal' waits, is retried once, then gives up", async () => {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  // ensure() alters the journal (add column if not exists), which waits for every other lock on it.
  const holder = await holding(db.url, 'select count(*) from vault_db_migrations');
  const lines: string[] = [];

  const error = await failure(runMigrations({ url: db.url, ...shortWaits, log: (line) => lines.push(line) }));
  expect(error).toBeInstanceOf(TransientError);
  expect(error.message).toBe(gaveUp('creating the migration journal'));
  expect(lines).toEqual(['creating the migration journal: a table lock was not free within 200 ms; retrying in 10 ms (attempt 2 of 2)']);

  await holder.query('rollback');
  expect((await runMigrations({ url: db.url, log: () => {} })).applied).toEqual([]);
});

test("a checksum to record behind another transaction's lock: 'recording checksums' waits, is retried once, then gives up", async () => {
  const db = await createTestDatabase();
  cleanups.push(() => db.drop());
  const [first] = await queryOnce<{ name: string }>(db.url, 'select name from vault_db_migrations order by id limit 1');
  // A journal row without its checksum (a journal from before checksums) is backfilled under the
  // lock. The update's trigger takes a lock that another session holds, so the backfill, and only
  // it, waits: the journal itself stays free for ensure().
  await queryOnce(db.url, 'update vault_db_migrations set checksum = null where name = $1', [first!.name]);
  await queryOnce(db.url, `create table blocker (x int);
    create function wait_for_blocker() returns trigger language plpgsql as $$ begin lock table blocker in access exclusive mode; return new; end $$;
    create trigger wait_for_blocker before update on vault_db_migrations for each row execute function wait_for_blocker()`);
  const holder = await holding(db.url, 'lock table blocker in access share mode');
  const lines: string[] = [];

  const error = await failure(runMigrations({ url: db.url, ...shortWaits, log: (line) => lines.push(line) }));
  expect(error).toBeInstanceOf(TransientError);
  expect(error.message).toBe(gaveUp('recording checksums'));
  expect(lines).toEqual(['recording checksums: a table lock was not free within 200 ms; retrying in 10 ms (attempt 2 of 2)']);
  const [unrecorded] = await queryOnce<{ checksum: string | null }>(db.url, 'select checksum from vault_db_migrations where name = $1', [first!.name]);
  expect(unrecorded?.checksum).toBeNull();

  await holder.query('rollback');
  expect((await runMigrations({ url: db.url, log: () => {} })).applied).toEqual([]);
  const [recorded] = await queryOnce<{ checksum: string | null }>(db.url, 'select checksum from vault_db_migrations where name = $1', [first!.name]);
  expect(recorded?.checksum).toMatch(/^[0-9a-f]{64}$/);
});
