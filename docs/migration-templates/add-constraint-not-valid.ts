import { NonTransactionalMigration } from '../migrations-runner/non-transactional-migration.js';

/**
 * Template: a CHECK (or FOREIGN KEY) constraint on a table with data. Added NOT VALID (a short
 * lock, no scan; new rows are checked at once), then validated in a statement of its own, which
 * scans the rows while reads and writes go on.
 * Copy into src/migrations/, rename file and class to Migration<yyyyMMddHHmmss>.
 */
export class MigrationTemplateAddConstraintNotValid extends NonTransactionalMigration {

  override async up(): Promise<void> {
    this.addConstraintNotValid('records', 'records_record_id_not_blank', `check (length(btrim(record_id)) > 0)`);
    this.validateConstraint('records', 'records_record_id_not_blank');
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "records" drop constraint if exists "records_record_id_not_blank";`);
  }

}
