/**
 * The migration lock's wait and the migration connection, from outside: a run that finds the lock
 * held by another session for longer than `lockTimeoutMs` gives up with a `TransientError` that
 * names the wait and the lock to look for in `pg_locks`, and applies nothing; a run that can't
 * connect says so with the URL's password redacted.
 */
import { afterEach, expect, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { createConfig } from '../src/config.js';
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
