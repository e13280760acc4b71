/**
 * The programmatic migration runner: applies only the pending migrations, each inside a
 * transaction, while holding a PostgreSQL advisory lock so that two processes starting at once
 * apply each migration exactly once (the second waits, then finds nothing pending).
 *
 * @module
 */
import { MikroORM } from '@mikro-orm/postgresql';
import type { Migrator } from '@mikro-orm/migrations';
import pg from 'pg';
import { createConfig } from './config.js';
import { pgConnectionConfig } from './connection-options.js';
import { checkDatabaseReachable, resolveMigrationUrl, type DatabaseTarget } from './database-url.js';
import { TransientError } from './errors.js';

/** Key of the advisory lock held while migrating: the first 8 bytes of sha256('vault-db:migrations'). */
export const MIGRATION_LOCK_KEY = '1452837154174613557';

/** Options of {@link runMigrations}. */
export interface RunMigrationsOptions {
  /** Database to migrate. Default: `DIRECT_URL`, else `DATABASE_URL`, else the embedded server. */
  url?: string;
  /** Receives one line per migration applied. Default: `console.log`. Pass `() => {}` to silence. */
  log?: (line: string) => void;
  /** How long to wait for another process's migration run, in ms. Default 120,000. */
  lockTimeoutMs?: number;
}

/** What {@link runMigrations} did. */
export interface MigrationReport {
  /** Migrations applied by this call, in order. */
  applied: string[];
  /** Migrations that were already applied before this call. */
  previouslyApplied: string[];
  /** The server's version string. */
  serverVersion: string;
}

/**
 * Brings the database to the current schema.
 *
 * @example
 * ```ts
 * const { applied } = await runMigrations({ url: process.env.DIRECT_URL });
 * ```
 * @throws ConfigurationError when the database can't be reached
 * @throws TransientError when another process held the migration lock for longer than `lockTimeoutMs`
 */
export async function runMigrations(options: RunMigrationsOptions = {}): Promise<MigrationReport> {
  const log = options.log ?? ((line: string) => console.log(line));
  const target: DatabaseTarget = options.url ? { url: options.url, source: 'DATABASE_URL' } : await resolveMigrationUrl();
  const serverVersion = await checkDatabaseReachable(target);

  // The lock lives on its own session, not in the ORM's pool, so it is held for the whole run
  // and released by the server if this process dies.
  const lock = new pg.Client(pgConnectionConfig(target.url, { variable: target.source }));
  lock.on('error', () => {});
  await lock.connect();
  try {
    await lock.query(`set lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs ?? 120_000))}`);
    try {
      await lock.query('select pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    } catch (error) {
      throw new TransientError('Timed out waiting for another process to finish migrating; retry later.', error);
    }
    const config = createConfig(target.url, { pool: { min: 0, max: 2 } });
    // Applying migrations must not rewrite the migration snapshot in the source tree: MikroORM
    // would write the target database's schema (drift included) to it, truncating the file in
    // place while `migration:check` in another process may be reading it.
    const orm = await MikroORM.init({ ...config, migrations: { ...config.migrations, snapshot: false } });
    try {
      const migrator = orm.getMigrator() as Migrator;
      const previouslyApplied = (await migrator.getExecutedMigrations()).map((m) => m.name);
      const pending = await migrator.getPendingMigrations();
      if (pending.length === 0) return { applied: [], previouslyApplied, serverVersion };
      const applied = (await migrator.up()).map((m) => m.name);
      // Logged after `up()` returns, not from the 'migrated' event: MikroORM 6.6 rebuilds its
      // Umzug inside `up()`, dropping listeners added before, and with allOrNothing a migration
      // is applied only once the whole run commits.
      for (const name of applied) log(`migrated ${name}`);
      return { applied, previouslyApplied, serverVersion };
    } finally {
      await orm.close(true);
    }
  } finally {
    await lock.query('select pg_advisory_unlock_all()').catch(() => {});
    await lock.end().catch(() => {});
  }
}
