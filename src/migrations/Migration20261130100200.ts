import { Migration } from '@mikro-orm/migrations';

/**
 * The vault's counters are kept by the database, for every writer, and raw SQL writers get feed
 * positions the same way the sync service does (issues #9.2, #9.3, #12.1).
 *
 * Statement-level AFTER triggers on `records`, over transition tables, update each touched vault
 * once per statement:
 * - INSERT and UPDATE: `last_seq` rises to the highest `seq` written; `record_count` and
 *   `stored_bytes` follow the live rows. An INSERT at or below the vault's `version_floor` is
 *   refused (`records_version_above_floor`), so no writer can reuse a version.
 * - DELETE: `version_floor` rises to the highest version deleted. Deleted tombstones raise
 *   `purged_seq` to their highest position (cursors that had not seen them must resync). Deleting
 *   a live record (a raw DELETE, the ORM's orphan removal) is a change no device could learn of
 *   from the feed, so every device must resync: `last_seq + 1` becomes the new `purged_seq`. A
 *   cascade from deleting the vault finds no vault row and changes nothing.
 *
 * Row-level BEFORE triggers serve raw writers that leave `seq` to the database:
 * - an INSERT with no `seq` takes the vault row lock and the next position
 *   (`update vaults set last_seq = last_seq + 1 ... returning`), and starts above `version_floor`;
 * - an UPDATE of `ciphertext`, `deleted` or `version` that keeps `seq` takes the next position
 *   too, and bumps `version` when the writer left it unchanged (so devices' optimistic checks stay
 *   honest); a `version` that goes down is refused.
 * Their WHEN clauses are evaluated in C before any PL/pgSQL runs: the sync service always sets
 * `seq`, so on its path they never fire.
 *
 * Also: `record_id` can't change (a rename would leave the old id on every device), and TRUNCATE
 * of `records` first raises every vault's `version_floor` and forces every device to resync.
 *
 * Functions pin `search_path` to `pg_catalog, pg_temp` and qualify every table, so a caller's
 * objects can't shadow them. None is SECURITY DEFINER: they touch only the vault row of the
 * records being written, which the writer may already update.
 */
export class Migration20261130100200 extends Migration {

  override async up(): Promise<void> {
    // Existing vaults: the counters from their records. The versions of tombstones purged before
    // this migration are gone; where a vault was ever purged, its highest remaining version is the
    // best floor there is (and the purge horizon still makes stale devices resync).
    this.addSql(`update "vaults" v
      set record_count = s.live, stored_bytes = s.bytes,
          version_floor = case when v.purged_seq > 0 then s.max_version else 0 end
      from (select vault_id,
                   count(*) filter (where not deleted)::int as live,
                   coalesce(sum(octet_length(ciphertext)) filter (where not deleted), 0)::bigint as bytes,
                   max(version) as max_version
            from "records" group by vault_id) s
      where s.vault_id = v.id;`);

    this.addSql(`create function public.vault_db_count_inserted_records() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  offender record;
begin
  with added as (
    select n.vault_id,
           max(n.seq) as max_seq,
           min(n.version) as min_version,
           count(*) filter (where not n.deleted)::int as live,
           coalesce(sum(octet_length(n.ciphertext)) filter (where not n.deleted), 0)::bigint as bytes
    from inserted_rows n
    group by n.vault_id
  ), moved as (
    update public.vaults v
       set last_seq = greatest(v.last_seq, a.max_seq),
           record_count = v.record_count + a.live,
           stored_bytes = v.stored_bytes + a.bytes
      from added a
     where v.id = a.vault_id
    returning v.id, v.version_floor, a.min_version
  )
  select m.id, m.version_floor into offender from moved m where m.min_version <= m.version_floor limit 1;
  if found then
    select n.record_id, n.version into offender
      from inserted_rows n join public.vaults v on v.id = n.vault_id
     where n.vault_id = offender.id and n.version <= v.version_floor
     limit 1;
    raise exception 'record "%" can not start at version %: deleted records of its vault used versions up to the vault''s version_floor, and versions are never reused', offender.record_id, offender.version
      using errcode = '23514', constraint = 'records_version_above_floor';
  end if;
  return null;
end $$;`);
    this.addSql(`create trigger records_count_inserts after insert on "records"
      referencing new table as inserted_rows
      for each statement execute function public.vault_db_count_inserted_records();`);

    this.addSql(`create function public.vault_db_count_updated_records() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  with delta as (
    select d.vault_id, max(d.max_seq) as max_seq, sum(d.live)::int as live, sum(d.bytes)::bigint as bytes
    from (
      select n.vault_id, max(n.seq) as max_seq,
             count(*) filter (where not n.deleted) as live,
             coalesce(sum(octet_length(n.ciphertext)) filter (where not n.deleted), 0) as bytes
        from updated_rows n group by n.vault_id
      union all
      select o.vault_id, null,
             -count(*) filter (where not o.deleted),
             -coalesce(sum(octet_length(o.ciphertext)) filter (where not o.deleted), 0)
        from previous_rows o group by o.vault_id
    ) d
    group by d.vault_id
  )
  update public.vaults v
     set last_seq = greatest(v.last_seq, d.max_seq),
         record_count = v.record_count + d.live,
         stored_bytes = v.stored_bytes + d.bytes
    from delta d
   where v.id = d.vault_id
     -- An update that moved nothing the vault counts (say, of updated_at) leaves the vault row alone.
     and (d.max_seq > v.last_seq or d.live <> 0 or d.bytes <> 0);
  return null;
end $$;`);
    this.addSql(`create trigger records_count_updates after update on "records"
      referencing old table as previous_rows new table as updated_rows
      for each statement execute function public.vault_db_count_updated_records();`);

    this.addSql(`create function public.vault_db_count_deleted_records() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  with gone as (
    select o.vault_id,
           max(o.seq) filter (where o.deleted) as tombstone_seq,
           count(*) filter (where not o.deleted)::int as live,
           coalesce(sum(octet_length(o.ciphertext)) filter (where not o.deleted), 0)::bigint as bytes,
           max(o.version) as max_version
      from deleted_rows o
     group by o.vault_id
  )
  update public.vaults v
     -- Every SET expression reads the row as it was: v.last_seq + 1 is the new head in both places.
     set last_seq = v.last_seq + case when g.live > 0 then 1 else 0 end,
         purged_seq = case when g.live > 0 then v.last_seq + 1 else greatest(v.purged_seq, g.tombstone_seq) end,
         version_floor = greatest(v.version_floor, g.max_version),
         record_count = v.record_count - g.live,
         stored_bytes = v.stored_bytes - g.bytes
    from gone g
   where v.id = g.vault_id;
  return null;
end $$;`);
    this.addSql(`create trigger records_count_deletes after delete on "records"
      referencing old table as deleted_rows
      for each statement execute function public.vault_db_count_deleted_records();`);

    this.addSql(`create function public.vault_db_place_raw_insert() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  position bigint;
  floor integer;
begin
  -- Takes the vault row lock, as the sync service does, so positions stay gap-free.
  update public.vaults set last_seq = last_seq + 1 where id = new.vault_id returning last_seq, version_floor into position, floor;
  if not found then
    raise exception 'record "%" names vault %, which does not exist or is not visible to this role', new.record_id, new.vault_id
      using errcode = '23503', constraint = 'records_vault_id_fkey';
  end if;
  new.seq := position;
  new.version := greatest(new.version, floor + 1);
  return new;
end $$;`);
    this.addSql(`create trigger records_place_raw_insert before insert on "records" for each row
      when (new.seq is null)
      execute function public.vault_db_place_raw_insert();`);

    this.addSql(`create function public.vault_db_place_raw_update() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  position bigint;
begin
  if new.version < old.version then
    raise exception 'record "%": version can not go down (from % to %)', old.record_id, old.version, new.version
      using errcode = '23514', constraint = 'records_version_never_decreases';
  end if;
  update public.vaults set last_seq = last_seq + 1 where id = new.vault_id returning last_seq into position;
  if not found then
    raise exception 'record "%" names vault %, which does not exist or is not visible to this role', new.record_id, new.vault_id
      using errcode = '23503', constraint = 'records_vault_id_fkey';
  end if;
  new.seq := position;
  if new.version = old.version then
    new.version := old.version + 1;
  end if;
  return new;
end $$;`);
    this.addSql(`create trigger records_place_raw_update before update on "records" for each row
      when (new.seq is not distinct from old.seq
            and (new.ciphertext is distinct from old.ciphertext or new.deleted is distinct from old.deleted or new.version is distinct from old.version))
      execute function public.vault_db_place_raw_update();`);

    this.addSql(`create function public.vault_db_freeze_record_id() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  raise exception 'records.record_id can not change (record "%"); delete it and create the new id', old.record_id
    using errcode = '23514', constraint = 'records_record_id_immutable';
end $$;`);
    this.addSql(`create trigger records_record_id_immutable before update of record_id on "records" for each row
      when (new.record_id is distinct from old.record_id)
      execute function public.vault_db_freeze_record_id();`);

    this.addSql(`create function public.vault_db_resync_on_truncate() returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  -- As if every row were deleted: versions are never reused, and every device resyncs.
  update public.vaults v
     set version_floor = greatest(v.version_floor, r.max_version),
         last_seq = v.last_seq + 1,
         purged_seq = v.last_seq + 1,
         record_count = 0,
         stored_bytes = 0
    from (select vault_id, max(version) as max_version from public.records group by vault_id) r
   where v.id = r.vault_id;
  return null;
end $$;`);
    this.addSql(`create trigger records_truncate_resync before truncate on "records"
      for each statement execute function public.vault_db_resync_on_truncate();`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop trigger if exists records_truncate_resync on "records";`);
    this.addSql(`drop function if exists public.vault_db_resync_on_truncate();`);
    this.addSql(`drop trigger if exists records_record_id_immutable on "records";`);
    this.addSql(`drop function if exists public.vault_db_freeze_record_id();`);
    this.addSql(`drop trigger if exists records_place_raw_update on "records";`);
    this.addSql(`drop function if exists public.vault_db_place_raw_update();`);
    this.addSql(`drop trigger if exists records_place_raw_insert on "records";`);
    this.addSql(`drop function if exists public.vault_db_place_raw_insert();`);
    this.addSql(`drop trigger if exists records_count_deletes on "records";`);
    this.addSql(`drop function if exists public.vault_db_count_deleted_records();`);
    this.addSql(`drop trigger if exists records_count_updates on "records";`);
    this.addSql(`drop function if exists public.vault_db_count_updated_records();`);
    this.addSql(`drop trigger if exists records_count_inserts on "records";`);
    this.addSql(`drop function if exists public.vault_db_count_inserted_records();`);
  }

}
