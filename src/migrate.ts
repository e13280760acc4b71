/**
 * The programmatic migration runner: `runMigrations()` applies the pending migrations with
 * {@link VaultDbMigrator}, the same code `npm run db:migrate` runs, so the two share one lock and
 * one set of rules (see src/migrations-runner/vault-db-migrator.ts).
 *
 * @module
 */
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig } from './config.js';
import { checkDatabaseReachable, resolveMigrationUrl, type DatabaseTarget } from './database-url.js';
import { parseMigratorOptions, type MigratorOptions } from './migrations-runner/options.js';
import type { VaultDbMigrator } from './migrations-runner/vault-db-migrator.js';

export { MIGRATION_LOCK_KEY } from './migrations-runner/lock.js';
export { VaultDbMigrator, type MigrationRunReport } from './migrations-runner/vault-db-migrator.js';
export { MigrationRefusedError, type MigrationRefusal } from './migrations-runner/errors.js';
export { MIGRATOR_DEFAULTS, type MigratorOptions, type UnknownMigrationsPolicy } from './migrations-runner/options.js';
export { NonTransactionalMigration } from './migrations-runner/non-transactional-migration.js';

/** Options of {@link runMigrations}: where, plus any {@link MigratorOptions}. */
export interface RunMigrationsOptions extends Partial<MigratorOptions> {
  /** Database to migrate. Default: `DIRECT_URL`, else `DATABASE_URL`, else the embedded server. */
  url?: string;
}

/** What {@link runMigrations} did. */
export interface MigrationReport {
  /** Migrations applied by this call, in order. */
  applied: string[];
  /** Migrations that were already applied before this call, in the order they were applied. */
  previouslyApplied: string[];
  /** Applied migrations this code doesn't have (reported only with `onUnknownMigrations: 'warn'`). */
  unknownApplied: string[];
  /** The server's version string. */
  serverVersion: string;
}

/**
 * Brings the database to the current schema: each pending migration in a transaction of its own,
 * under the migration lock, with a bounded wait for table locks, retried; see
 * {@link VaultDbMigrator} and {@link MigratorOptions}.
 *
 * @example
 * ```ts
 * const { applied } = await runMigrations({ url: process.env.DIRECT_URL });
 * ```
 * @throws ConfigurationError when the database can't be reached, or an option is invalid
 * @throws MigrationRefusedError when the URL goes through a pooler, the database is ahead of the
 *   code, or an applied migration changed; nothing was changed
 * @throws TransientError when the migration lock or a table lock was not free in time, or the
 *   connection was lost; retry later
 * @throws DatabaseError when a migration failed; it was rolled back, the ones before it stay applied
 */
export async function runMigrations(options: RunMigrationsOptions = {}): Promise<MigrationReport> {
  const { url, ...rest } = options;
  const settings = parseMigratorOptions(rest);
  const target: DatabaseTarget = url ? { url, source: 'DATABASE_URL' } : await resolveMigrationUrl();
  const serverVersion = await checkDatabaseReachable(target);

  const config = createConfig(target.url, { pool: { min: 0, max: 2 } });
  // The snapshot is the entities' business (db:create-migration); applying never writes it.
  const orm = await MikroORM.init({ ...config, migrations: { ...config.migrations, snapshot: false } });
  try {
    const migrator = (orm.migrator as VaultDbMigrator).configure(settings);
    const report = await migrator.migrate('up');
    return {
      applied: report.applied,
      previouslyApplied: report.previouslyApplied,
      unknownApplied: report.unknownApplied,
      serverVersion,
    };
  } finally {
    await orm.close(true);
  }
}
