import { Migration } from '@mikro-orm/migrations';

/**
 * Pins every function's `search_path` to `pg_catalog, pg_temp` and schema-qualifies its tables.
 *
 * Before this migration `vault_db_check_record_owner` (SECURITY DEFINER) ran with
 * `search_path = pg_catalog, public`. A schema path that does not name `pg_temp` searches it
 * FIRST, so any role with TEMP (every role, by default) could `create temp table vaults`, map a
 * victim's vault id to its own user id, and plant records in the victim's vault: the check read
 * the temp table. With `pg_temp` listed last, and the table written `public.vaults`, a temp table
 * can shadow nothing (functions and operators are never looked up in `pg_temp` at all).
 *
 * EXECUTE is revoked from PUBLIC on all three. Trigger functions need no EXECUTE privilege when
 * their trigger fires (PostgreSQL checks it only at CREATE TRIGGER), and nobody should call them
 * directly; test/security/function-hardening.test.ts proves the triggers still fire for the
 * application role.
 */
export class Migration20261130200000 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create or replace function public.vault_db_touch_updated_at() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  new.updated_at := now();
  return new;
end $$;`);

    // security definer: the owner check must see the vault even when row-level security hides it
    // from the caller; a missing vault is left to the foreign key to reject.
    this.addSql(`create or replace function public.vault_db_check_record_owner() returns trigger language plpgsql
security definer set search_path = pg_catalog, pg_temp as $$
declare
  owner text;
begin
  select v.user_id into owner from public.vaults v where v.id = new.vault_id;
  if found and owner is distinct from new.user_id then
    raise exception 'records.user_id must equal the user_id of its vault (record "%")', new.record_id
      using errcode = '23514', constraint = 'records_user_id_matches_vault';
  end if;
  return new;
end $$;`);

    this.addSql(`create or replace function public.vault_db_freeze_vault_user_id() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  if new.user_id is distinct from old.user_id then
    raise exception 'vaults.user_id can not change (vault %)', old.id
      using errcode = '23514', constraint = 'vaults_user_id_immutable';
  end if;
  return new;
end $$;`);

    this.addSql(`revoke execute on function public.vault_db_touch_updated_at(), public.vault_db_check_record_owner(), public.vault_db_freeze_vault_user_id() from public;`);
  }

  /** Back to the definitions of Migration20261127113700, the unsafe search_path included. */
  override async down(): Promise<void> {
    this.addSql(`grant execute on function public.vault_db_touch_updated_at(), public.vault_db_check_record_owner(), public.vault_db_freeze_vault_user_id() to public;`);
    this.addSql(`create or replace function vault_db_touch_updated_at() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end $$;`);
    this.addSql(`create or replace function vault_db_check_record_owner() returns trigger language plpgsql
security definer set search_path = pg_catalog, public as $$
declare
  owner text;
begin
  select v.user_id into owner from vaults v where v.id = new.vault_id;
  if found and owner is distinct from new.user_id then
    raise exception 'records.user_id must equal the user_id of its vault (record "%")', new.record_id
      using errcode = '23514', constraint = 'records_user_id_matches_vault';
  end if;
  return new;
end $$;`);
    this.addSql(`create or replace function vault_db_freeze_vault_user_id() returns trigger language plpgsql as $$
begin
  if new.user_id is distinct from old.user_id then
    raise exception 'vaults.user_id can not change (vault %)', old.id
      using errcode = '23514', constraint = 'vaults_user_id_immutable';
  end if;
  return new;
end $$;`);
  }

}
