import { Migration } from '@mikro-orm/migrations';

/** The trigger functions of the feed counters and the raw-writer placement (Migration20261130100200). */
const TRIGGER_FUNCTIONS = [
  'vault_db_count_inserted_records',
  'vault_db_count_updated_records',
  'vault_db_count_deleted_records',
  'vault_db_place_raw_insert',
  'vault_db_place_raw_update',
  'vault_db_freeze_record_id',
  'vault_db_resync_on_truncate',
] as const;

/**
 * No role calls vault-db's trigger functions directly: a trigger fires whatever the writer's
 * EXECUTE rights (test/security/function-hardening.test.ts proves it), so PUBLIC's default
 * EXECUTE on the functions of Migration20261130100200 only widens what a SQL session of the
 * application role can reach. Revoked like the functions of Migration20261130200000; the
 * application role keeps EXECUTE on `vault_db_current_user()` alone, which its policies need.
 */
export class Migration20261130230000 extends Migration {

  override async up(): Promise<void> {
    for (const name of TRIGGER_FUNCTIONS) this.addSql(`revoke execute on function public.${name}() from public;`);
  }

  override async down(): Promise<void> {
    for (const name of TRIGGER_FUNCTIONS) this.addSql(`grant execute on function public.${name}() to public;`);
  }

}
