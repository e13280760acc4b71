import { Migration } from '@mikro-orm/migrations';

/**
 * Tables whose rows belong to one user through a `user_id text` column, each with the policy it
 * had before this migration (restored by `down()`). Adding a table to the claim-checked policy is
 * one line here: `['<table>', 'none']`.
 */
const USER_TABLES: readonly (readonly [table: string, before: 'app.user_id setting' | 'none'])[] = [
  ['vaults', 'app.user_id setting'],
  ['records', 'app.user_id setting'],
  ['key_rotations', 'app.user_id setting'],
  ['staged_records', 'app.user_id setting'],
];

/** Row-level security on `table`: only the user whose signed claim this transaction presents. */
function claimCheckedPolicy(table: string): string[] {
  // `(select f())` makes the check an InitPlan, evaluated once per statement, not once per row,
  // and lets the planner use the user_id index.
  const mine = `user_id = (select public.vault_db_current_user())`;
  return [
    `alter table public.${table} enable row level security;`,
    `drop policy if exists ${table}_owner_only on public.${table};`,
    `create policy ${table}_owner_only on public.${table} using (${mine}) with check (${mine});`,
  ];
}

/** What `table` had before: the honour-system policy of Migration20261127123000, or nothing. */
function previousPolicy(table: string, before: 'app.user_id setting' | 'none'): string[] {
  const drop = `drop policy if exists ${table}_owner_only on public.${table};`;
  if (before === 'none') return [drop, `alter table public.${table} disable row level security;`];
  return [
    drop,
    `create policy ${table}_owner_only on "${table}"
      using (user_id = current_setting('app.user_id', true))
      with check (user_id = current_setting('app.user_id', true));`,
  ];
}

/**
 * Signed identity claims: the database checks who a transaction acts for, instead of believing
 * `app.user_id`.
 *
 * Before, any session of the application role could `set_config('app.user_id', '<victim>')` and
 * read the victim's envelope. Now the policies compare `user_id` with `vault_db_current_user()`,
 * which returns `app.user_id` only when `app.user_claim` is `<expiry>.<hex HMAC-SHA-256>` of
 * `vault-db/app.user_claim/v1:<expiry>:<user id>` under a key that only the owner can read, and
 * the expiry (Unix seconds) is after the transaction's start. SyncService signs such a claim for
 * every transaction (src/sync/claim.ts).
 *
 * - `vault_db_claim_key`: one row, no grants. The HMAC pads are stored next to the key, so the
 *   check is `sha256(outer_pad || sha256(inner_pad || message))` with the built-in sha256(): no
 *   extension needed. The key is 32 bytes from sha256 of two gen_random_uuid() values (each with
 *   122 bits from the server's cryptographic random source).
 * - `vault_db_set_claim_key(bytea)` / `vault_db_rotate_claim_key()`: the owner's way to install or
 *   renew the key. EXECUTE revoked from PUBLIC (and they need the table's rights anyway).
 * - `vault_db_current_user()`: SECURITY DEFINER (it reads the key table for the caller), STABLE,
 *   pinned search_path, schema-qualified. EXECUTE revoked from PUBLIC: docs/app-role.sql grants
 *   it to the application role, which needs it because policies run with the caller's rights.
 *
 * `vault_db_claim_key` is not an entity; the ORM config lists it in `schemaGenerator.skipTables`
 * so schema diffs leave it alone.
 */
export class Migration20261130210000 extends Migration {

  override async up(): Promise<void> {
    this.addSql(`create table public.vault_db_claim_key (
  id smallint primary key check (id = 1),
  key bytea not null check (octet_length(key) = 32),
  inner_pad bytea not null check (octet_length(inner_pad) = 64),
  outer_pad bytea not null check (octet_length(outer_pad) = 64),
  created_at timestamptz not null default now()
);`);
    this.addSql(`revoke all on table public.vault_db_claim_key from public;`);

    // HMAC-SHA-256 with a key shorter than the 64-byte block: the key padded with zeros, XOR 0x36
    // (inner) and 0x5c (outer), per RFC 2104.
    this.addSql(`create function public.vault_db_set_claim_key(new_key bytea) returns void language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  block bytea;
  inner_pad bytea;
  outer_pad bytea;
begin
  if new_key is null or octet_length(new_key) <> 32 then
    raise exception 'the claim key must be 32 bytes' using errcode = '22023';
  end if;
  block := new_key || decode(repeat('00', 32), 'hex');
  inner_pad := block;
  outer_pad := block;
  for i in 0..63 loop
    inner_pad := set_byte(inner_pad, i, get_byte(block, i) # 54);
    outer_pad := set_byte(outer_pad, i, get_byte(block, i) # 92);
  end loop;
  insert into public.vault_db_claim_key as k (id, key, inner_pad, outer_pad, created_at)
  values (1, new_key, inner_pad, outer_pad, now())
  on conflict (id) do update set key = excluded.key, inner_pad = excluded.inner_pad, outer_pad = excluded.outer_pad, created_at = excluded.created_at;
end $$;`);
    this.addSql(`create function public.vault_db_rotate_claim_key() returns void language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  perform public.vault_db_set_claim_key(sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())));
end $$;`);
    this.addSql(`revoke execute on function public.vault_db_set_claim_key(bytea), public.vault_db_rotate_claim_key() from public;`);
    this.addSql(`select public.vault_db_rotate_claim_key();`);

    // Comparing sha256 of both MACs rather than the MACs themselves: an early-exit comparison
    // then leaks nothing an attacker can steer byte by byte.
    this.addSql(`create function public.vault_db_current_user() returns text language plpgsql stable
security definer set search_path = pg_catalog, pg_temp as $$
declare
  claimed_user text := current_setting('app.user_id', true);
  claim text := current_setting('app.user_claim', true);
  expires_at text;
  pads record;
begin
  if claimed_user is null or claimed_user = '' or claim is null or claim !~ '^[0-9]{1,15}[.][0-9a-f]{64}$' then
    return null;
  end if;
  expires_at := split_part(claim, '.', 1);
  if expires_at::numeric <= extract(epoch from now()) then
    return null;
  end if;
  select k.inner_pad, k.outer_pad into pads from public.vault_db_claim_key k where k.id = 1;
  if not found then
    return null;
  end if;
  if sha256(sha256(pads.outer_pad || sha256(pads.inner_pad || convert_to('vault-db/app.user_claim/v1:' || expires_at || ':' || claimed_user, 'UTF8'))))
     = sha256(decode(split_part(claim, '.', 2), 'hex')) then
    return claimed_user;
  end if;
  return null;
end $$;`);
    this.addSql(`revoke execute on function public.vault_db_current_user() from public;`);

    for (const [table] of USER_TABLES) for (const sql of claimCheckedPolicy(table)) this.addSql(sql);
  }

  override async down(): Promise<void> {
    for (const [table, before] of [...USER_TABLES].reverse()) for (const sql of previousPolicy(table, before)) this.addSql(sql);
    this.addSql(`drop function if exists public.vault_db_current_user();`);
    this.addSql(`drop function if exists public.vault_db_rotate_claim_key();`);
    this.addSql(`drop function if exists public.vault_db_set_claim_key(bytea);`);
    this.addSql(`drop table if exists public.vault_db_claim_key;`);
  }

}
