/**
 * The migrator the MikroORM CLI uses (`npm run db:migrate`, `db:rollback`; registered by
 * mikro-orm.config.ts): {@link VaultDbMigrator}, except that a refusal or a failure it explains
 * ends the process with that one line, instead of the CLI's usage text and a stack trace.
 *
 * @module
 */
import type { MigrateOptions, MikroORM, UmzugMigration } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { VaultDbError } from '../errors.js';
import { VaultDbMigrator } from './vault-db-migrator.js';

/** {@link VaultDbMigrator} with one-line errors, for the CLI process only. */
export class CliMigrator extends VaultDbMigrator {
  static override register(orm: MikroORM): void {
    orm.config.registerExtension('@mikro-orm/migrator', () => new CliMigrator(orm.em as EntityManager));
  }

  override async up(options?: string | string[] | MigrateOptions): Promise<UmzugMigration[]> {
    return exitOnKnownError(() => super.up(options));
  }

  override async down(options?: string | string[] | MigrateOptions): Promise<UmzugMigration[]> {
    return exitOnKnownError(() => super.down(options));
  }
}

async function exitOnKnownError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof VaultDbError)) throw error;
    // The session and its lock die with the process; nothing else is open.
    console.error(`vault-db: ${error.message}`);
    process.exit(1);
  }
}
