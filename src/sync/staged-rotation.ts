/**
 * The SQL of staged key rotations (`beginKeyRotation`, `stageKeyRotation`, `commitKeyRotation`,
 * `abortKeyRotation`), modelled on Firefox Sync's batch uploads: the client uploads re-encrypted
 * records in chunks that fit the per-call limits, and the commit swaps all of them, and the
 * envelope, in one transaction.
 *
 * These statements are raw SQL with bound parameters, like the feed's hot paths: a chunk carries
 * up to `maxRotationBytes` of ciphertext, which MikroORM 6 would inline into the SQL text as hex,
 * and the commit rewrites up to `maxVaultRecords` rows, which the unit of work would first load and
 * hydrate as entities. The tables are still MikroORM entities (`KeyRotation`, `StagedRecord`), so
 * the schema check covers them.
 *
 * Locks: begin and commit lock the vault row, then the rotation row; staging locks only the
 * rotation row, so uploads never hold up the vault's pushes. The lock order is the same
 * everywhere, so these calls can't deadlock each other.
 *
 * @module
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { RotationMismatch } from '../errors.js';
import { runBound } from './bound-sql.js';
import type { ValidReencrypted } from './input.js';
import { MAX_VERSION } from './judge.js';

/**
 * Opens a rotation for the (locked) vault, replacing any earlier one and its staged records.
 * @returns the new rotation's id
 */
export async function openRotation(em: EntityManager, vaultId: string, userId: string): Promise<string> {
  await em.execute('delete from key_rotations where vault_id = ?', [vaultId], 'run');
  const rows = await em.execute<{ id: string }[]>('insert into key_rotations (vault_id, user_id) values (?, ?) returning id', [vaultId, userId]);
  return (rows[0] as { id: string }).id;
}

/** Deletes the vault's open rotation, if any, with its staged records. */
export async function dropRotations(em: EntityManager, vaultId: string): Promise<void> {
  await em.execute('delete from key_rotations where vault_id = ?', [vaultId], 'run');
}

/**
 * Locks the user's rotation `rotationId` (of `vaultId`, when given).
 * @returns false when there is no such rotation
 */
export async function lockRotation(em: EntityManager, rotationId: string, userId: string, vaultId?: string): Promise<boolean> {
  const rows = await em.execute<{ id: string }[]>(
    vaultId === undefined
      ? 'select id from key_rotations where id = ? and user_id = ? for update'
      : 'select id from key_rotations where id = ? and user_id = ? and vault_id = ? for update',
    vaultId === undefined ? [rotationId, userId] : [rotationId, userId, vaultId],
  );
  return rows.length > 0;
}

/** Size of a rotation's staged set. */
export interface StagedTotals {
  records: number;
  bytes: number;
}

/**
 * Stages `records` (replacing earlier uploads of the same ids) and takes `remove` out of the
 * (locked) rotation.
 * @returns the staged set's size afterwards
 */
export async function stageRecords(em: EntityManager, rotationId: string, userId: string, records: readonly ValidReencrypted[], remove: readonly string[]): Promise<StagedTotals> {
  if (records.length > 0) {
    await runBound(
      em,
      `insert into staged_records (rotation_id, user_id, record_id, base_version, ciphertext)
       select ?::uuid, ?::text, u.record_id, u.base_version, u.ciphertext
       from unnest(?::text[], ?::int[], ?::bytea[]) as u(record_id, base_version, ciphertext)
       on conflict (rotation_id, record_id) do update set base_version = excluded.base_version, ciphertext = excluded.ciphertext`,
      [rotationId, userId, records.map((r) => r.recordId), records.map((r) => r.baseVersion), records.map((r) => r.ciphertext)],
    );
  }
  if (remove.length > 0) {
    await runBound(em, 'delete from staged_records where rotation_id = ? and record_id = any(?::text[])', [rotationId, remove]);
  }
  return stagedTotals(em, rotationId);
}

/** The size of a rotation's staged set. */
export async function stagedTotals(em: EntityManager, rotationId: string): Promise<StagedTotals> {
  const { rows } = await runBound<{ records: number; bytes: string }>(
    em,
    'select count(*)::int as records, coalesce(sum(octet_length(ciphertext)), 0)::bigint as bytes from staged_records where rotation_id = ?',
    [rotationId],
  );
  const row = rows[0] as { records: number; bytes: string };
  return { records: row.records, bytes: Number(row.bytes) };
}

/** How the staged set differs from the vault's live records, and which live records can't take another version. */
export interface StagedComparison extends RotationMismatch {
  missing: string[];
  unknown: string[];
  stale: string[];
  exhausted: string[];
}

/**
 * Compares the staged set with the (locked) vault's live records: every live record must be
 * staged, at its current version, and nothing else.
 */
export async function compareStaged(em: EntityManager, rotationId: string, vaultId: string): Promise<StagedComparison> {
  const { rows } = await runBound<{ live_id: string | null; staged_id: string | null; version: number | null; base_version: number | null }>(
    em,
    `select r.record_id as live_id, s.record_id as staged_id, r.version, s.base_version
     from (select record_id, version from records where vault_id = ? and not deleted) r
     full join (select record_id, base_version from staged_records where rotation_id = ?) s on s.record_id = r.record_id
     where r.record_id is null or s.record_id is null or r.version <> s.base_version or r.version >= ?
     order by coalesce(r.record_id, s.record_id)`,
    [vaultId, rotationId, MAX_VERSION],
  );
  const result: StagedComparison = { missing: [], unknown: [], stale: [], exhausted: [] };
  for (const row of rows) {
    if (row.staged_id === null) result.missing.push(row.live_id as string);
    else if (row.live_id === null) result.unknown.push(row.staged_id);
    else if (row.version !== row.base_version) result.stale.push(row.live_id);
    else result.exhausted.push(row.live_id);
  }
  return result;
}

/**
 * Swaps every staged ciphertext into its live record (version + 1, a new feed position each,
 * `lastSeq + 1 ...`) and deletes the rotation with its staged records.
 * @returns how many records were rewritten
 */
export async function swapStaged(em: EntityManager, rotationId: string, vaultId: string, lastSeq: number): Promise<number> {
  // Both sides hold up to maxVaultRecords rows. With statistics that don't know them yet (a vault
  // imported since the last ANALYZE), the planner may estimate one row each and loop over the
  // numbered staged rows once per record: quadratic, six minutes for 20,000 records (measured as
  // the application role, whose row-level security filter shapes the plan). A hash join is linear
  // whatever the estimates; the setting is reset right after this statement.
  await em.execute('set local enable_nestloop = off');
  const { rowCount } = await runBound(
    em,
    `update records r
     set ciphertext = s.ciphertext, version = r.version + 1, seq = ?::bigint + s.position
     from (select record_id, ciphertext, row_number() over (order by record_id) as position
           from staged_records where rotation_id = ?) s
     where r.vault_id = ? and r.record_id = s.record_id and not r.deleted`,
    [lastSeq, rotationId, vaultId],
  );
  await em.execute('set local enable_nestloop to default');
  await em.execute('delete from key_rotations where id = ?', [rotationId], 'run');
  return rowCount;
}

/**
 * Deletes the user's rotation `rotationId` with its staged records.
 * @returns false when there was none
 */
export async function deleteRotation(em: EntityManager, rotationId: string, userId: string): Promise<boolean> {
  const result = await em.execute<{ affectedRows: number }>('delete from key_rotations where id = ? and user_id = ?', [rotationId, userId], 'run');
  return result.affectedRows > 0;
}
