/**
 * The change feed's SQL: the deliberate hot paths that bypass the unit of work.
 *
 * Why the feed is gap-free: every write to a vault's records first locks the vault row and takes
 * the next feed positions after the counter on it (`vaults.last_seq`), and every written row gets a
 * fresh position; the database's triggers raise the counter to the highest position written, and
 * raw SQL writers that leave `seq` to the database take theirs under the same lock. PostgreSQL
 * makes a transaction visible before it releases its locks, so the next writer can only read the
 * counter after the previous one is visible: a reader that sees position `s` sees every committed
 * change below `s`. A rolled-back write rolls its counter back too.
 * `updated_at` or a database sequence can't do this: both are taken before commit, and
 * transactions commit out of order.
 *
 * The statements are built by functions, per call, not once at import: building a few hundred
 * characters costs nothing next to a round trip, and a mutation run (README, "Mutation testing")
 * activates a mutant only once a test has started, so text built at import kept its original
 * form and its mutants "survived" whatever the tests checked.
 *
 * @module
 */
import type { VaultRow } from '../rows.js';
import type { EntityManager } from '@mikro-orm/postgresql';
import { runBound } from './bound-sql.js';
import { claimSubquery, ClaimRefusal, claimBindings, claimRejection, type ClaimCheck, type ClaimSession } from './claim.js';
import type { FeedHead } from './cursor.js';
import type { RecordState } from './types.js';

/** The vault row as a push, a rotation or a purge reads it under the vault row lock. */
export interface LockedVault extends FeedHead {
  versionFloor: number;
  keyVersion: number;
  recordCount: number;
  storedBytes: number;
}

/**
 * Locks the user's vault row (waiting at most the transaction's `lock_timeout`) and reads its head
 * and counters, without writing anything: feed positions are assigned by the caller, in memory,
 * only to rows it actually writes (`lastSeq + 1`, `+ 2`, ...), and the database's triggers move
 * `last_seq` and the counters when those rows are written. A call that writes nothing leaves the
 * vault row exactly as it was.
 *
 * @returns null when the user has no vault
 */
export async function lockVault(em: EntityManager, userId: string): Promise<LockedVault | null> {
  const rows = await em.execute<LockRow[]>(`select ${lockColumns()} from vaults where user_id = ? for update`, [userId]);
  return toLockedVault(rows[0]);
}

/** The vault columns a lock reads, in the order of {@link LockRow}. */
function lockColumns(): string {
  return 'id, last_seq, purged_seq, version_floor, key_version, record_count, stored_bytes';
}

/** The columns of {@link lockColumns}, typed as node-pg returns them. */
type LockRow = Pick<VaultRow, 'id' | 'last_seq' | 'purged_seq' | 'version_floor' | 'key_version' | 'record_count' | 'stored_bytes'>;

function toLockedVault(row: LockRow | undefined | null): LockedVault | null {
  if (!row?.id) return null;
  return {
    vaultId: row.id,
    lastSeq: Number(row.last_seq),
    purgedSeq: Number(row.purged_seq),
    versionFloor: row.version_floor,
    keyVersion: row.key_version,
    recordCount: row.record_count,
    storedBytes: Number(row.stored_bytes),
  };
}

// The claim row first, then the vault locked through a LATERAL join on the verified user: the
// vault's scan (and its row-level-security policy) can only run once the settings are made, and
// the lock waits at most the lock_timeout this same statement set. See claimSubquery.
function claimAndLockSql(): string {
  return `select c.verified, c.db_now, v.${lockColumns().split(', ').join(', v.')}
from ${claimSubquery()} as c
left join lateral (select ${lockColumns()} from vaults where user_id = c.verified for update) as v on true`;
}

/**
 * {@link lockVault} as a transaction's first statement: it also presents the claim and sets the
 * lock wait (see `claimSubquery` in `claim.ts`), so a push starts with one round trip, not two.
 * Binds its parameters, so the claim appears in no SQL text.
 *
 * @returns null when the user has no vault
 * @throws ClaimRefusal when the database refused the claim
 */
export async function presentClaimAndLockVault(em: EntityManager, session: ClaimSession): Promise<LockedVault | null> {
  const { rows } = await runBound<ClaimCheck & LockRow>(em, claimAndLockSql(), claimBindings(session));
  const rejection = claimRejection(rows[0], session.userId);
  if (rejection) throw new ClaimRefusal(rejection);
  return toLockedVault(rows[0]);
}

/** One page of the feed, read in a single statement, so it and the head come from one snapshot. */
export interface FeedPage extends FeedHead {
  changes: (RecordState & { seq: number })[];
  hasMore: boolean;
}

interface FeedRow extends ClaimCheck {
  vault_id: string | null;
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

// Presents the claim, then reads the vault head and the page in the same statement (one snapshot,
// one round trip). The vault is reached only through the verified user (see claimSubquery), and
// its subquery ends in OFFSET 0 so the planner keeps it a parameterized scan on the claim row
// rather than, say, hashing the vaults (and evaluating their policy) first. The inner query walks
// idx_records_vault_seq from the cursor; the outer filter keeps the rows that start within the
// byte budget, which is the page plus the next row, which tells whether more is waiting. The
// first two rows are always kept: a first row larger than the budget is a page of its own, and
// the second still has to say that more is waiting.
function pageSql(): string {
  return `
select c.verified, c.db_now, v.id as vault_id, v.last_seq, v.purged_seq,
       p.record_id, p.version, p.deleted, p.ciphertext, p.updated_at, p.seq, p.running_bytes
from ${claimSubquery()} as c
left join lateral (select id, last_seq, purged_seq from vaults where user_id = c.verified offset 0) as v on true
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
order by p.seq`;
}

/**
 * Presents the claim (a transaction's first statement, see `claimSubquery` in `claim.ts`) and
 * reads the changes after `afterSeq`: at most `limit` of them and at most `maxBytes` of
 * ciphertext, but always at least one when any is waiting.
 *
 * @returns null when the user has no vault
 * @throws ClaimRefusal when the database refused the claim
 */
export async function readFeedPage(em: EntityManager, session: ClaimSession, afterSeq: number, limit: number, maxBytes: number): Promise<FeedPage | null> {
  const { rows } = await runBound<FeedRow>(em, pageSql(), [...claimBindings(session), afterSeq, limit + 1, maxBytes]);
  const head = rows[0];
  const rejection = claimRejection(head, session.userId);
  if (rejection) throw new ClaimRefusal(rejection);
  if (!head?.vault_id) return null;
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
 * Deletes the vault's tombstones last written before `olderThan`. The delete trigger raises
 * `purged_seq` to the highest position removed (cursors that had not seen them must resync) and
 * `version_floor` to the highest version removed (so the record ids can't start over at a version
 * a device still remembers). Runs under the vault row lock.
 *
 * @returns how many tombstones were removed, or null when the user has no vault
 */
export async function purgeVaultTombstones(em: EntityManager, userId: string, olderThan: Date): Promise<number | null> {
  // Lock first, in its own statement, so the delete below reads a snapshot taken after any push
  // that held the lock has committed.
  const head = await lockVault(em, userId);
  if (!head) return null;
  const result = await em.execute<{ affectedRows: number }>('delete from records where vault_id = ? and deleted and updated_at < ?', [head.vaultId, olderThan], 'run');
  return result.affectedRows;
}
