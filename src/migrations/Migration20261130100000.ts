import { Migration } from '@mikro-orm/migrations';

/**
 * Generated from the entities by `migration:create`; comments and `down()` written by hand.
 *
 * - `vaults.version_floor`: the highest version of any record row deleted from the vault; new
 *   records start above it, so a version is never used twice for a record id (issue #12.1).
 * - `vaults.key_version`: the generation of the vault key, bumped by rotations; pushes carrying
 *   ciphertext under an older key are refused.
 * - `vaults.record_count`, `vaults.stored_bytes`: live records and their ciphertext bytes, for the
 *   per-vault quota, read under the vault lock.
 * - `key_rotations`, `staged_records`: staged key rotations, uploaded in chunks and committed in
 *   one transaction; both go with their vault (ON DELETE CASCADE).
 *
 * The triggers that maintain the counters come in Migration20261130100200.
 */
export class Migration20261130100000 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "key_rotations" ("id" uuid not null default gen_random_uuid(), "user_id" text not null, "vault_id" uuid not null, "created_at" timestamptz not null default now(), constraint "key_rotations_pkey" primary key ("id"));`);
    this.addSql(`create index "idx_key_rotations_user_id" on "key_rotations" ("user_id");`);
    this.addSql(`alter table "key_rotations" add constraint "key_rotations_vault_id_unique" unique ("vault_id");`);

    this.addSql(`create table "staged_records" ("id" uuid not null default gen_random_uuid(), "user_id" text not null, "rotation_id" uuid not null, "record_id" text not null, "base_version" int not null, "ciphertext" bytea not null, constraint "staged_records_pkey" primary key ("id"));`);
    this.addSql(`create index "idx_staged_records_user_id" on "staged_records" ("user_id");`);
    this.addSql(`alter table "staged_records" add constraint "staged_records_rotation_id_record_id_unique" unique ("rotation_id", "record_id");`);

    this.addSql(`alter table "key_rotations" add constraint "key_rotations_vault_id_fkey" foreign key ("vault_id") references "vaults" ("id") on update no action on delete cascade;`);

    this.addSql(`alter table "staged_records" add constraint "staged_records_rotation_id_fkey" foreign key ("rotation_id") references "key_rotations" ("id") on update no action on delete cascade;`);

    this.addSql(`alter table "vaults" add column "version_floor" int not null default 0, add column "key_version" int not null default 1, add column "record_count" int not null default 0, add column "stored_bytes" bigint not null default 0;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "staged_records" cascade;`);
    this.addSql(`drop table if exists "key_rotations" cascade;`);
    this.addSql(`alter table "vaults" drop column "version_floor", drop column "key_version", drop column "record_count", drop column "stored_bytes";`);
  }

}
