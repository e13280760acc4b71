import { NonTransactionalMigration } from '../migrations-runner/non-transactional-migration.js';

/**
 * Template: a new index on a table with data, built without blocking writes.
 * Copy into src/migrations/, rename file and class to Migration<yyyyMMddHHmmss>.
 */
export class MigrationTemplateCreateIndexConcurrently extends NonTransactionalMigration {

  override async up(): Promise<void> {
    // Drops an INVALID leftover of a killed earlier run, then CREATE INDEX CONCURRENTLY IF NOT EXISTS.
    this.createIndexConcurrently('idx_records_vault_updated_at', 'records', '(vault_id, updated_at)');
  }

  override async down(): Promise<void> {
    this.dropIndexConcurrently('idx_records_vault_updated_at');
  }

}
