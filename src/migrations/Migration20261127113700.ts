import { Migration } from '@mikro-orm/migrations';

/**
 * Rules the entities can't express, enforced by the database so raw SQL can't break them either:
 * - `updated_at` is set on every update of either table, including writes that bypass the ORM;
 * - `records.user_id` always equals its vault's `user_id`;
 * - `vaults.user_id` never changes (a vault can't move to another user under its records).
 *
 * MikroORM's schema diff ignores triggers and functions, so these keep `schema:validate` clean.
 */
export class Migration20261127113700 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create or replace function vault_db_touch_updated_at() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end $$;`);
    this.addSql(`create trigger vaults_touch_updated_at before update on "vaults" for each row execute function vault_db_touch_updated_at();`);
    this.addSql(`create trigger records_touch_updated_at before update on "records" for each row execute function vault_db_touch_updated_at();`);

    // security definer: the owner check must see the vault even when row-level security hides it
    // from the caller; a missing vault is left to the foreign key to reject.
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
    this.addSql(`create trigger records_user_id_matches_vault before insert or update of user_id, vault_id on "records" for each row execute function vault_db_check_record_owner();`);

    this.addSql(`create or replace function vault_db_freeze_vault_user_id() returns trigger language plpgsql as $$
begin
  if new.user_id is distinct from old.user_id then
    raise exception 'vaults.user_id can not change (vault %)', old.id
      using errcode = '23514', constraint = 'vaults_user_id_immutable';
  end if;
  return new;
end $$;`);
    this.addSql(`create trigger vaults_user_id_immutable before update of user_id on "vaults" for each row execute function vault_db_freeze_vault_user_id();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger if exists vaults_user_id_immutable on "vaults";`);
    this.addSql(`drop function if exists vault_db_freeze_vault_user_id();`);
    this.addSql(`drop trigger if exists records_user_id_matches_vault on "records";`);
    this.addSql(`drop function if exists vault_db_check_record_owner();`);
    this.addSql(`drop trigger if exists records_touch_updated_at on "records";`);
    this.addSql(`drop trigger if exists vaults_touch_updated_at on "vaults";`);
    this.addSql(`drop function if exists vault_db_touch_updated_at();`);
  }

}
