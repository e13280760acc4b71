import { Migration } from '@mikro-orm/migrations';

/**
 * Row-level security as defence in depth: a role that is not the tables' owner (and has no
 * BYPASSRLS) sees and changes only the rows of the user named by the transaction-local setting
 * `app.user_id`, which SyncService sets in every transaction it opens. With no setting, it sees
 * nothing. The owner, which runs migrations, is not subject to these policies.
 *
 * MikroORM's schema diff does not track policies, so this keeps `schema:validate` clean.
 */
export class Migration20261127123000 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`alter table "vaults" enable row level security;`);
    this.addSql(`alter table "records" enable row level security;`);
    this.addSql(`create policy vaults_owner_only on "vaults"
      using (user_id = current_setting('app.user_id', true))
      with check (user_id = current_setting('app.user_id', true));`);
    this.addSql(`create policy records_owner_only on "records"
      using (user_id = current_setting('app.user_id', true))
      with check (user_id = current_setting('app.user_id', true));`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop policy if exists records_owner_only on "records";`);
    this.addSql(`drop policy if exists vaults_owner_only on "vaults";`);
    this.addSql(`alter table "records" disable row level security;`);
    this.addSql(`alter table "vaults" disable row level security;`);
  }

}
