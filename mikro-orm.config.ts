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
import { createConfig, MIGRATIONS_DIR } from './src/config.js';
import { checkDatabaseReachable } from './src/database-url.js';
import { resolveMigrationUrlOrEmbedded } from './src/embedded.js';
import { VaultDbError } from './src/errors.js';
import { CliMigrator } from './src/migrations-runner/cli-migrator.js';

// Only these commands should read or write the committed snapshot. `migration:up`/`down` would
// otherwise overwrite it with whatever schema the target database has, drift included.
const SNAPSHOT_COMMANDS = new Set(['migration:create', 'migration:check']);

export default async (): Promise<Options> => {
  try {
    // The repository's development CLI: with no URL it asks for the embedded server.
    const target = await resolveMigrationUrlOrEmbedded();
    await checkDatabaseReachable(target);
    const snapshot = process.argv.some((arg) => SNAPSHOT_COMMANDS.has(arg));
    // The migrations still come from src/migrations/index.ts; the folder is where
    // `migration:create` writes a new one (then add it to the index) and the snapshot.
    return createConfig(target.url, {
      extensions: [CliMigrator],
      migrations: { path: MIGRATIONS_DIR, pathTs: MIGRATIONS_DIR, snapshot },
    });
  } catch (error) {
    if (error instanceof VaultDbError) {
      console.error(`vault-db: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
};
