/**
 * The change feed's SQL: the deliberate hot paths that bypass the unit of work.
 *
 * Why the feed is gap-free: every write to a vault's records first locks the vault row and takes
 * the next feed positions from the counter on it (`vaults.last_seq`), and every written row gets a
 * fresh position. PostgreSQL makes a transaction visible before it releases its locks, so the next
 * writer can only read the counter after the previous push is visible: a reader that sees position
 * `s` sees every committed change below `s`. A rolled-back push rolls its counter bump back too.
 * `updated_at` or a database sequence can't do this: both are taken before commit, and
 * transactions commit out of order.
 *
 * @module
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { FeedHead } from './cursor.js';
import type { RecordState } from './types.js';

/**
 * Locks the user's vault row (waiting at most the transaction's `lock_timeout`) and reserves
 * `count` feed positions, `lastSeq + 1 .. lastSeq + count`, in one round trip; the head returned
 * is the one before the reservation. Unused positions
 * are harmless holes: readers only ever ask for "after my cursor".
 *
 * @returns null when the user has no vault
 */
export async function lockVaultAndReserve(em: EntityManager, userId: string, count: number): Promise<FeedHead | null> {
  const rows = await em.execute<{ id: string; last_seq: string; purged_seq: string }[]>(
    'update vaults set last_seq = last_seq + ? where user_id = ? returning id, last_seq - ? as last_seq, purged_seq',
    [count, userId, count],
  );
  const row = rows[0];
  return row ? { vaultId: row.id, lastSeq: Number(row.last_seq), purgedSeq: Number(row.purged_seq) } : null;
}

/** One page of the feed, read in a single statement, so it and the head come from one snapshot. */
export interface FeedPage extends FeedHead {
  changes: (RecordState & { seq: number })[];
  hasMore: boolean;
}

interface FeedRow {
  vault_id: string;
  last_seq: string;
  purged_seq: string;
  record_id: string | null;
  version: number;
  deleted: boolean;
  ciphertext: Buffer;
  /** Raw SQL through MikroORM's driver returns timestamptz as text. */
  updated_at: string;
  seq: string;
  running_bytes: string;
}

// Reads the vault head and the page in one statement (one snapshot). The inner query walks
// idx_records_vault_seq from the cursor; the outer filter keeps the rows that start within the
// byte budget, which is the page plus the next row, which tells whether more is waiting. The
// first two rows are always kept: a first row larger than the budget is a page of its own, and
// the second still has to say that more is waiting.
const PAGE_SQL = `
select v.id as vault_id, v.last_seq, v.purged_seq,
       p.record_id, p.version, p.deleted, p.ciphertext, p.updated_at, p.seq, p.running_bytes
from vaults v
left join lateral (
  select q.record_id, q.version, q.deleted, q.ciphertext, q.updated_at, q.seq, q.running_bytes from (
    select r.record_id, r.version, r.deleted, r.ciphertext, r.updated_at, r.seq,
           sum(octet_length(r.ciphertext)) over (order by r.seq) as running_bytes,
           row_number() over (order by r.seq) as rn
    from records r
    where r.vault_id = v.id and r.seq > ?
    order by r.seq
    limit ?
  ) q
  where q.rn <= 2 or q.running_bytes - octet_length(q.ciphertext) <= ?
) p on true
where v.user_id = ?
order by p.seq`;

/**
 * Reads the changes after `afterSeq`: at most `limit` of them and at most `maxBytes` of
 * ciphertext, but always at least one when any is waiting.
 *
 * @returns null when the user has no vault
 */
export async function readFeedPage(em: EntityManager, userId: string, afterSeq: number, limit: number, maxBytes: number): Promise<FeedPage | null> {
  const rows = await em.execute<FeedRow[]>(PAGE_SQL, [afterSeq, limit + 1, maxBytes, userId]);
  const head = rows[0];
  if (!head) return null;
  const changes: FeedPage['changes'] = [];
  for (const row of rows) {
    if (row.record_id === null) break;
    if (changes.length >= limit || (changes.length > 0 && Number(row.running_bytes) > maxBytes)) break;
    changes.push({
      recordId: row.record_id,
      version: row.version,
      deleted: row.deleted,
      ciphertext: row.deleted ? null : row.ciphertext,
      updatedAt: new Date(row.updated_at),
      seq: Number(row.seq),
    });
  }
  return {
    vaultId: head.vault_id,
    lastSeq: Number(head.last_seq),
    purgedSeq: Number(head.purged_seq),
    changes,
    hasMore: rows.filter((r) => r.record_id !== null).length > changes.length,
  };
}

/**
 * Deletes the vault's tombstones last written before `olderThan` and raises `purged_seq` to the
 * highest position removed, so cursors that had not seen them must resync instead of silently
 * missing a delete. Runs under the vault row lock.
 *
 * @returns how many tombstones were removed
 */
export async function purgeVaultTombstones(em: EntityManager, userId: string, olderThan: Date): Promise<number> {
  // Lock first, in its own statement, so the delete below reads a snapshot taken after any push
  // that held the lock has committed.
  const locked = await em.execute<{ id: string }[]>('select id from vaults where user_id = ? for update', [userId]);
  const vaultId = locked[0]?.id;
  if (vaultId === undefined) return 0;
  const rows = await em.execute<{ purged: string }[]>(
    `with gone as (delete from records where vault_id = ? and deleted and updated_at < ? returning seq),
          bump as (update vaults set purged_seq = greatest(purged_seq, (select max(seq) from gone))
                   where id = ? and exists (select 1 from gone))
     select count(*) as purged from gone`,
    [vaultId, olderThan, vaultId],
  );
  return Number(rows[0]?.purged ?? 0);
}
