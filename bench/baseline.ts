/**
 * The baseline: the sync service's push and pull written by hand on `pg`, as fast as plain SQL
 * allows while keeping every rule of the service, so that each benchmark figure is a ratio to the
 * best the same server can do in the same run.
 *
 * Same transaction shape as `SyncService`: BEGIN; `set_config` of the user and the lock wait, in
 * the statement that locks the vault row and reads its head (`select ... for update`, no write),
 * as the service does since issue 10 (it sets a signed claim too); read the affected
 * records in one SELECT; judge every change in memory; one INSERT and one UPDATE over `unnest`
 * arrays, only for rows actually written (the database's triggers move the vault's counters); COMMIT.
 * The judge rules are written out again here (not imported from `src/sync/judge.ts`), so the
 * bench's equality check compares two independent implementations of them. Input validation and
 * the cursor format are shared with the service: they are the API, not the subject of the bench.
 *
 * @module
 */
import pg from 'pg';
import { VaultNotFoundError } from '../src/errors.js';
import { encodeCursor, parseCursor, resumePosition } from '../src/sync/cursor.js';
import { validatePull, validatePush, validateUserId, type ValidChange } from '../src/sync/input.js';
import {
  DEFAULT_LIMITS,
  type Conflict,
  type ConflictReason,
  type PullInput,
  type PullResult,
  type PushInput,
  type PushResult,
  type RecordState,
  type SyncLimits,
  type SyncServiceOptions,
} from '../src/sync/types.js';

/** The two calls the bench measures, as both implementations offer them. */
export interface SyncImplementation {
  push(userId: string, input: PushInput): Promise<PushResult>;
  pull(userId: string, input?: PullInput): Promise<PullResult>;
}

/** A record as the judge needs it. `ciphertext` is only read when the change can't simply apply. */
interface AffectedRow {
  record_id: string;
  version: number;
  deleted: boolean;
  updated_at: Date;
  ciphertext: Buffer | null;
}

type Verdict = { kind: 'write'; version: number } | { kind: 'already_applied'; version: number } | { kind: 'conflict'; reason: ConflictReason };

const MAX_VERSION = 2_147_483_647;

/** The judge rules of `src/sync/judge.ts`, over a row instead of an entity. */
function judgeRow(change: ValidChange, row: AffectedRow | undefined, floor: number): Verdict {
  if (!row) {
    if (change.baseVersion !== 0 || change.ciphertext === null) return { kind: 'conflict', reason: 'gone' };
    return floor >= MAX_VERSION ? { kind: 'conflict', reason: 'version_exhausted' } : { kind: 'write', version: floor + 1 };
  }
  if (change.baseVersion === row.version) return row.version >= MAX_VERSION ? { kind: 'conflict', reason: 'version_exhausted' } : { kind: 'write', version: row.version + 1 };
  const sameBytes = change.ciphertext !== null && !row.deleted && row.ciphertext !== null && row.ciphertext.equals(change.ciphertext);
  if (change.baseVersion === 0) return sameBytes ? { kind: 'already_applied', version: row.version } : { kind: 'conflict', reason: 'exists' };
  if (row.version === change.baseVersion + 1 && (change.ciphertext === null ? row.deleted : sameBytes)) return { kind: 'already_applied', version: row.version };
  return { kind: 'conflict', reason: row.deleted ? 'gone' : 'version_mismatch' };
}

function toState(row: AffectedRow): RecordState {
  return { recordId: row.record_id, version: row.version, deleted: row.deleted, ciphertext: row.deleted ? null : row.ciphertext, updatedAt: row.updated_at };
}

// The settings first (an OFFSET 0 subquery is evaluated first and never flattened), then the
// vault through a LATERAL join on them, so the lock waits at most the lock_timeout just set.
const LOCK = `select v.id, v.last_seq, v.purged_seq, v.version_floor
from (select set_config('app.user_id', $1, true) as uid, set_config('lock_timeout', $2, true) offset 0) as s,
lateral (select id, last_seq, purged_seq, version_floor from vaults where user_id = s.uid for update) as v`;

// Ciphertext is fetched only for records whose version differs from the change's base: those are
// the conflicts (reported with the server's state) and possible re-sends (compared byte for byte).
// A change that simply applies never needs the old ciphertext.
const SELECT_AFFECTED = `
select r.record_id, r.version, r.deleted, r.updated_at,
       case when r.version <> u.base then r.ciphertext end as ciphertext
from unnest($2::text[], $3::int[]) as u(record_id, base)
join records r on r.vault_id = $1 and r.record_id = u.record_id`;

const INSERT_RECORDS = `
insert into records (vault_id, user_id, record_id, ciphertext, deleted, seq, version)
select $1, $2, t.record_id, t.ciphertext, t.deleted, t.seq, $7
from unnest($3::text[], $4::bytea[], $5::bool[], $6::bigint[]) as t(record_id, ciphertext, deleted, seq)`;

// The version condition is redundant under the vault lock, but it is what an optimistic lock
// costs in plain SQL, and the row count proves no write was lost.
const UPDATE_RECORDS = `
update records r
set ciphertext = u.ciphertext, deleted = u.deleted, seq = u.seq, version = r.version + 1
from unnest($2::text[], $3::bytea[], $4::bool[], $5::bigint[], $6::int[]) as u(record_id, ciphertext, deleted, seq, base)
where r.vault_id = $1 and r.record_id = u.record_id and r.version = u.base`;

// The service's feed page query (src/sync/feed.ts), with pg's placeholders and the baseline's
// settings in place of the claim. Keep the two in step: the judge walk's paging steps fail when
// they drift apart.
const PAGE_SQL = `
select v.id as vault_id, v.last_seq, v.purged_seq,
       p.record_id, p.version, p.deleted, p.ciphertext, p.updated_at, p.seq, p.running_bytes
from (select set_config('app.user_id', $4, true) as uid, set_config('lock_timeout', $5, true) offset 0) as s
left join lateral (select id, last_seq, purged_seq from vaults where user_id = s.uid offset 0) as v on true
left join lateral (
  select q.record_id, q.version, q.deleted, q.ciphertext, q.updated_at, q.seq, q.running_bytes from (
    select r.record_id, r.version, r.deleted, r.ciphertext, r.updated_at, r.seq,
           sum(octet_length(r.ciphertext)) over (order by r.seq) as running_bytes,
           row_number() over (order by r.seq) as rn
    from records r
    where r.vault_id = v.id and r.seq > $1
    order by r.seq
    limit $2
  ) q
  where q.rn <= 2 or q.running_bytes - octet_length(q.ciphertext) <= $3
) p on true
order by p.seq`;

interface FeedRow {
  vault_id: string | null;
  last_seq: string;
  purged_seq: string;
  record_id: string | null;
  version: number;
  deleted: boolean;
  ciphertext: Buffer;
  updated_at: Date;
  seq: string;
  running_bytes: string;
}

const EMPTY = Buffer.alloc(0);

const TIMESTAMPTZ = 1184;

/**
 * A pool for the baseline. node-pg's general-purpose timestamptz parser costs several
 * microseconds a row; V8's `Date` reads PostgreSQL's text form directly and faster, which is
 * what a hand-tuned pull would do (and what the service does with MikroORM's text timestamps).
 */
export function createBaselinePool(connectionString: string, max: number): pg.Pool {
  const types: pg.CustomTypesConfig = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === TIMESTAMPTZ && format !== 'binary' ? (text: string) => new Date(text) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
  };
  const pool = new pg.Pool({ connectionString, max, types });
  pool.on('error', () => {});
  return pool;
}

/**
 * Push and pull in hand-written SQL with `SyncService`'s semantics and results.
 *
 * @example
 * ```ts
 * const baseline = new BaselineSync(createBaselinePool(url, 10));
 * const result = await baseline.push(userId, { changes });
 * ```
 */
export class BaselineSync implements SyncImplementation {
  /** The limits in force, as in `SyncService`. */
  readonly limits: Readonly<SyncLimits>;
  /** Statements sent so far, BEGIN and COMMIT included: each `client.query` is one round trip. */
  queries = 0;
  private readonly lockTimeoutMs: number;

  /**
   * @param pool connections to the bench database
   * @param options the same limits and lock wait `SyncService` takes
   */
  constructor(
    private readonly pool: pg.Pool,
    options: SyncServiceOptions = {},
  ) {
    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...options.limits });
    this.lockTimeoutMs = Math.max(1, Math.floor(options.lockTimeoutMs ?? 5000));
  }

  /** `SyncService.push`, in six statements whatever the batch size. */
  async push(userId: string, input: PushInput): Promise<PushResult> {
    const owner = validateUserId(userId);
    const { changes, atomic, cursor } = validatePush(input, this.limits);
    return this.transaction(async (client) => {
      const heads = await this.query<{ id: string; last_seq: string; purged_seq: string; version_floor: number }>(client, LOCK, [owner, this.lockTimeout()]);
      const head = heads[0];
      if (!head) throw new VaultNotFoundError(owner);
      const vaultId = head.id;
      const lastSeq = Number(head.last_seq);
      const since = resumePosition(cursor === null ? null : parseCursor(cursor), { vaultId, lastSeq, purgedSeq: Number(head.purged_seq) }, 'push');

      const rows =
        changes.length === 0
          ? []
          : await this.query<AffectedRow>(client, SELECT_AFFECTED, [vaultId, changes.map((c) => c.recordId), changes.map((c) => c.baseVersion)]);
      const byId = new Map(rows.map((r) => [r.record_id, r]));

      const applied: PushResult['applied'] = [];
      const confirmed: PushResult['applied'] = [];
      const conflicts: Conflict[] = [];
      const inserts = { ids: [] as string[], bytes: [] as Buffer[], deleted: [] as boolean[], seqs: [] as number[] };
      const updates = { ids: [] as string[], bytes: [] as Buffer[], deleted: [] as boolean[], seqs: [] as number[], bases: [] as number[] };
      let seq = lastSeq;
      for (const change of changes) {
        const row = byId.get(change.recordId);
        const verdict = judgeRow(change, row, head.version_floor);
        if (verdict.kind === 'conflict') {
          conflicts.push({ recordId: change.recordId, reason: verdict.reason, server: row ? toState(row) : null });
          continue;
        }
        if (verdict.kind === 'already_applied') {
          applied.push({ recordId: change.recordId, version: verdict.version });
          confirmed.push({ recordId: change.recordId, version: verdict.version });
          continue;
        }
        applied.push({ recordId: change.recordId, version: verdict.version });
        const target = row ? updates : inserts;
        target.ids.push(change.recordId);
        target.bytes.push(change.ciphertext ?? EMPTY);
        target.deleted.push(change.ciphertext === null);
        target.seqs.push(++seq);
        if (row) updates.bases.push(row.version);
      }

      const horizon = Number(head.purged_seq);
      if (atomic && conflicts.length > 0) return { applied: confirmed, conflicts, cursor: encodeCursor(vaultId, since, horizon) };
      const next = encodeCursor(vaultId, since === lastSeq ? seq : since, horizon);
      if (inserts.ids.length > 0) {
        await this.query(client, INSERT_RECORDS, [vaultId, owner, inserts.ids, inserts.bytes, inserts.deleted, inserts.seqs, head.version_floor + 1]);
      }
      if (updates.ids.length > 0) {
        const updated = await this.execute(client, UPDATE_RECORDS, [vaultId, updates.ids, updates.bytes, updates.deleted, updates.seqs, updates.bases]);
        if (updated !== updates.ids.length) throw new Error(`baseline: ${updates.ids.length - updated} records changed under the vault lock`);
      }
      return { applied, conflicts, cursor: next };
    });
  }

  /** `SyncService.pull`: the same page query, in its own transaction. */
  async pull(userId: string, input: PullInput = {}): Promise<PullResult> {
    const owner = validateUserId(userId);
    const { cursor, limit, maxBytes } = validatePull(input, this.limits);
    return this.transaction(async (client) => {
      const position = cursor === null ? null : parseCursor(cursor);
      const rows = await this.query<FeedRow>(client, PAGE_SQL, [position?.seq ?? 0, limit + 1, maxBytes, owner, this.lockTimeout()]);
      const head = rows[0];
      if (!head?.vault_id) throw new VaultNotFoundError(owner);
      const lastSeq = Number(head.last_seq);
      resumePosition(position, { vaultId: head.vault_id, lastSeq, purgedSeq: Number(head.purged_seq) }, 'pull');
      const changes: RecordState[] = [];
      let lastTaken = 0;
      let waiting = 0;
      for (const row of rows) {
        if (row.record_id === null) break;
        waiting++;
        if (changes.length >= limit || (changes.length > 0 && Number(row.running_bytes) > maxBytes)) continue;
        changes.push({ recordId: row.record_id, version: row.version, deleted: row.deleted, ciphertext: row.deleted ? null : row.ciphertext, updatedAt: row.updated_at });
        lastTaken = Number(row.seq);
      }
      const hasMore = waiting > changes.length;
      return { changes, cursor: encodeCursor(head.vault_id, hasMore ? lastTaken : lastSeq, Number(head.purged_seq)), hasMore };
    });
  }

  /** The lock wait, as `set_config('lock_timeout', ...)` takes it. */
  private lockTimeout(): string {
    return `${this.lockTimeoutMs}ms`;
  }

  /** BEGIN, `work` (whose first statement makes the transaction-local settings), COMMIT (ROLLBACK on throw). */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await this.query(client, 'begin');
      const result = await work(client);
      await this.query(client, 'commit');
      return result;
    } catch (error) {
      await this.query(client, 'rollback').catch((e: unknown) => {
        // A connection that can't even roll back must not go back to the pool.
        broken = e instanceof Error ? e : new Error(String(e));
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  private async query<R extends pg.QueryResultRow>(client: pg.PoolClient, text: string, values?: unknown[]): Promise<R[]> {
    this.queries++;
    return (await client.query<R>(text, values)).rows;
  }

  private async execute(client: pg.PoolClient, text: string, values: unknown[]): Promise<number> {
    this.queries++;
    return (await client.query(text, values)).rowCount ?? 0;
  }
}

