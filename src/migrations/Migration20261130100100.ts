import { Migration } from '@mikro-orm/migrations';

/**
 * `vaults.updated_at` says when the vault itself last changed (its envelope, its key, its device),
 * not when its records did. Since Migration20261127130000 an update that moves only `last_seq` and
 * `purged_seq` leaves it alone; the triggers of Migration20261130100200 keep three more counters
 * on the vault row (`version_floor`, `record_count`, `stored_bytes`) on every write to `records`,
 * so those are ignored too. `key_version` is not a counter: a rotation does touch `updated_at`.
 */
export class Migration20261130100100 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`drop trigger if exists vaults_touch_updated_at on "vaults";`);
    this.addSql(`create trigger vaults_touch_updated_at before update on "vaults" for each row
      when (to_jsonb(old) - '{last_seq,purged_seq,version_floor,record_count,stored_bytes}'::text[]
            is distinct from to_jsonb(new) - '{last_seq,purged_seq,version_floor,record_count,stored_bytes}'::text[])
      execute function vault_db_touch_updated_at();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger if exists vaults_touch_updated_at on "vaults";`);
    this.addSql(`create trigger vaults_touch_updated_at before update on "vaults" for each row
      when (to_jsonb(old) - '{last_seq,purged_seq}'::text[] is distinct from to_jsonb(new) - '{last_seq,purged_seq}'::text[])
      execute function vault_db_touch_updated_at();`);
  }

}
