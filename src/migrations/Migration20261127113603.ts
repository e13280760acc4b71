import { Migration } from '@mikro-orm/migrations';

/** The two tables, generated from the entities by `migration:create --initial`; `down()` written by hand. */
export class Migration20261127113603 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table "vaults" ("id" uuid not null default gen_random_uuid(), "user_id" text not null, "wrapped_key" bytea not null, "salt" bytea not null, "kdf_params" jsonb not null, "device_fingerprint" text null, "version" int not null default 1, "last_seq" bigint not null default 0, "purged_seq" bigint not null default 0, "enabled_at" timestamptz not null default now(), "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), constraint "vaults_pkey" primary key ("id"));`);
    this.addSql(`alter table "vaults" add constraint "idx_vaults_user_id" unique ("user_id");`);

    this.addSql(`create table "records" ("id" uuid not null default gen_random_uuid(), "user_id" text not null, "vault_id" uuid not null, "record_id" text not null, "ciphertext" bytea not null, "version" int not null default 1, "deleted" boolean not null default false, "seq" bigint not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), constraint "records_pkey" primary key ("id"), constraint records_tombstone_is_empty check ((deleted and octet_length(ciphertext) = 0) or (not deleted and octet_length(ciphertext) > 0)));`);
    this.addSql(`create index "idx_records_user_id" on "records" ("user_id");`);
    this.addSql(`create index "idx_records_record_id" on "records" ("record_id");`);
    this.addSql(`create index "idx_records_updated_at" on "records" ("updated_at");`);
    this.addSql(`create index "idx_records_vault_id" on "records" ("vault_id");`);
    this.addSql(`alter table "records" add constraint "idx_records_vault_seq" unique ("vault_id", "seq");`);
    this.addSql(`alter table "records" add constraint "records_vault_id_record_id_unique" unique ("vault_id", "record_id");`);

    this.addSql(`alter table "records" add constraint "records_vault_id_fkey" foreign key ("vault_id") references "vaults" ("id") on update no action on delete cascade;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "records" cascade;`);
    this.addSql(`drop table if exists "vaults" cascade;`);
  }

}
