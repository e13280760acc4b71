/**
 * Per-file test databases: each test file creates a database of its own, a clone of the run's
 * migrated template (template-database.ts), and drops it afterwards, so files never see each
 * other's rows.
 *
 * Databases are created, migrated and dropped through the direct URL (`serverUrl`: migrations
 * need a session of their own for the advisory lock); the ORM of {@link createTestOrm} gets the
 * pooled URL of the same database (`pooledUrl`), as the application does in production.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { createConfig } from '../../src/config.js';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { adminQuery, withDatabase } from '../../scripts/database-admin.js';
import { ormLoginFor } from './app-role.js';
import { cloneTemplate, TEST_DATABASE_PREFIX } from './template-database.js';

/** A fresh database of a test's own on the test server. */
export interface TestDatabase {
  name: string;
  /**
   * The database's direct URL, logging in as the role that created it (the owner). Use it for
   * raw SQL and for anything that needs a session of its own: advisory locks, killing backends.
   */
  url: string;
  /** The same database through the pooler, when the test server has one (else equal to `url`). */
  pooledUrl: string;
  /** Drops the database (forcing other sessions off). */
  drop(): Promise<void>;
}

/**
 * Creates a migrated database (a clone of the run's template), or with `migrate: false` an empty
 * one, for the tests that run migrations themselves.
 */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const server = inject('serverUrl');
  const name = `${TEST_DATABASE_PREFIX}${randomBytes(5).toString('hex')}`;
  if (options.migrate ?? true) await cloneTemplate(server, inject('templateDatabase'), name);
  else await adminQuery(server, `create database "${name}"`);
  const url = withDatabase(server, name);
  return {
    name,
    url,
    pooledUrl: withDatabase(inject('pooledServerUrl'), name),
    drop: () => adminQuery(server, `drop database if exists "${name}" with (force)`),
  };
}

/**
 * A raw `pg` pool on `url`, for catalog checks and raw SQL. Its idle clients' errors are ignored:
 * a test database is dropped WITH (FORCE) at the end, which terminates any backend `end()` has not
 * closed yet, and pg-pool re-emits that 57P01 on the pool, where without a listener it would be an
 * uncaught exception that fails the run outside any test. Errors of queries still reject.
 */
export function testPool(url: string, max: number): pg.Pool {
  const pool = new pg.Pool({ ...pgConnectionConfig(url), max });
  pool.on('error', () => {});
  return pool;
}

/** A migrated database with an ORM connected to it. */
export interface TestOrm extends TestDatabase {
  orm: MikroORM;
  /** A raw `pg` pool on the same database (direct, as the owner), for catalog checks and raw SQL. */
  pool: pg.Pool;
  close(): Promise<void>;
}

/**
 * Creates a migrated database and connects an ORM and a raw pool to it. The pool (and `url`) log
 * in as the owner, directly; the ORM goes through the pooler (`pooledUrl`) as the owner too,
 * unless `VAULT_DB_TEST_AS_APP_ROLE=1` makes it log in as a non-owner role under row-level
 * security (see app-role.ts).
 */
export async function createTestOrm(overrides: Parameters<typeof createConfig>[1] = {}): Promise<TestOrm> {
  const db = await createTestDatabase();
  const login = await ormLoginFor(db);
  const orm = await MikroORM.init(createConfig(login.url, overrides));
  const pool = testPool(db.url, 10);
  return {
    ...db,
    orm,
    pool,
    close: async () => {
      await orm.close(true);
      await pool.end();
      await login.drop();
      await db.drop();
    },
  };
}

/**
 * Runs one statement on `url` in a session of its own, closed afterwards; its rows. For checks
 * from outside the code under test (a journal, a catalog, what a child process wrote).
 */
export async function queryOnce<T extends object>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client(pgConnectionConfig(url));
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T & pg.QueryResultRow>(sql, params)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}
