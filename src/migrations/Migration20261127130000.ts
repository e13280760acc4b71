import { Migration } from '@mikro-orm/migrations';

/**
 * `vaults.updated_at` tells when the vault itself changed (its envelope, its owner's device), not
 * when its records did: every push moves the feed counters (`last_seq`, `purged_seq`) on the vault
 * row, and before this migration that touched `updated_at` on every push too. Any other change,
 * including raw SQL and columns added later, still sets it.
 */
export class Migration20261127130000 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`drop trigger if exists vaults_touch_updated_at on "vaults";`);
    this.addSql(`create trigger vaults_touch_updated_at before update on "vaults" for each row
      when (to_jsonb(old) - '{last_seq,purged_seq}'::text[] is distinct from to_jsonb(new) - '{last_seq,purged_seq}'::text[])
      execute function vault_db_touch_updated_at();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger if exists vaults_touch_updated_at on "vaults";`);
    this.addSql(`create trigger vaults_touch_updated_at before update on "vaults" for each row execute function vault_db_touch_updated_at();`);
  }

}
