/**
 * Configuration the MikroORM CLI finds by itself (`npm run db:migrate`, `db:rollback`,
 * `db:create-migration`, or the plain `mikro-orm` commands). It connects to `DIRECT_URL`, else
 * `DATABASE_URL`, else the embedded PostgreSQL, and fails with one clear line when the database
 * can't be reached.
 *
 * `migration:up` and `migration:down` run {@link CliMigrator}: the same runner as
 * `runMigrations()` (one lock, per-migration transactions, lock timeouts, checksums), with
 * one-line errors. Its options come from the environment (see src/migrations-runner/options.ts).
 */
import type { Options } from '@mikro-orm/postgresql';
import { createConfig } from './src/config.js';
import { checkDatabaseReachable, resolveMigrationUrl } from './src/database-url.js';
import { VaultDbError } from './src/errors.js';
import { CliMigrator } from './src/migrations-runner/cli-migrator.js';

// Only these commands should read or write the committed snapshot. `migration:up`/`down` would
// otherwise overwrite it with whatever schema the target database has, drift included.
const SNAPSHOT_COMMANDS = new Set(['migration:create', 'migration:check']);

export default async (): Promise<Options> => {
  try {
    const target = await resolveMigrationUrl();
    await checkDatabaseReachable(target);
    const config = createConfig(target.url);
    const snapshot = process.argv.some((arg) => SNAPSHOT_COMMANDS.has(arg));
    return { ...config, extensions: [CliMigrator], migrations: { ...config.migrations, snapshot } };
  } catch (error) {
    if (error instanceof VaultDbError) {
      console.error(`vault-db: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
};
