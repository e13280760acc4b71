import { Migration } from '@mikro-orm/migrations';

/**
 * Row-level security on the staged-rotation tables, in the same form as `vaults` and `records`
 * (Migration20261127123000): a non-owner role sees and changes only the rows of the user named by
 * the transaction-local setting `app.user_id`, which SyncService sets in every transaction.
 */
export class Migration20261130100300 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`alter table "key_rotations" enable row level security;`);
    this.addSql(`alter table "staged_records" enable row level security;`);
    this.addSql(`create policy key_rotations_owner_only on "key_rotations"
      using (user_id = current_setting('app.user_id', true))
      with check (user_id = current_setting('app.user_id', true));`);
    this.addSql(`create policy staged_records_owner_only on "staged_records"
      using (user_id = current_setting('app.user_id', true))
      with check (user_id = current_setting('app.user_id', true));`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop policy if exists staged_records_owner_only on "staged_records";`);
    this.addSql(`drop policy if exists key_rotations_owner_only on "key_rotations";`);
    this.addSql(`alter table "staged_records" disable row level security;`);
    this.addSql(`alter table "key_rotations" disable row level security;`);
  }

}
