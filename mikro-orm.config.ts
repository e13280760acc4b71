/**
 * Configuration the MikroORM CLI finds by itself (`npm run db:migrate`, `db:rollback`,
 * `db:create-migration`, or the plain `mikro-orm` commands). It connects to `DATABASE_URL`, or
 * starts the embedded PostgreSQL when that is unset, and fails with one clear line when the
 * database can't be reached.
 */
import type { Options } from '@mikro-orm/postgresql';
import { createConfig } from './src/config.js';
import { checkDatabaseReachable, resolveMigrationUrl } from './src/database-url.js';
import { VaultDbError } from './src/errors.js';

// Only these commands should read or write the committed snapshot. `migration:up`/`down` would
// otherwise overwrite it with whatever schema the target database has, drift included.
const SNAPSHOT_COMMANDS = new Set(['migration:create', 'migration:check']);

export default async (): Promise<Options> => {
  try {
    const target = await resolveMigrationUrl();
    await checkDatabaseReachable(target);
    const config = createConfig(target.url);
    const snapshot = process.argv.some((arg) => SNAPSHOT_COMMANDS.has(arg));
    return { ...config, migrations: { ...config.migrations, snapshot } };
  } catch (error) {
    if (error instanceof VaultDbError) {
      console.error(`vault-db: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
};
