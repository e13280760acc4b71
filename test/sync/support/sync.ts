/**
 * Helpers shared by the SyncService tests. Everything runs against the real database of the test
 * file (see test/support/database.ts); the raw `pg` pool reads rows behind the service's back, so
 * assertions never trust the service's own account of what it wrote.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect } from 'vitest';
import type pg from 'pg';
import { SyncService } from '../../../src/sync/sync-service.js';
import type { DeleteChange, PullInput, RecordState, SyncServiceOptions, UpsertChange } from '../../../src/sync/types.js';
import { createTestOrm, type TestOrm } from '../../support/database.js';
import { envelope } from '../../support/fixtures.js';

/** The test file's database and a service on it; filled in by `beforeAll`. */
export interface SyncContext {
  db: TestOrm;
  sync: SyncService;
}

/**
 * Creates the file's database in `beforeAll` and drops it in `afterAll`. The returned object is
 * filled in before the first test runs.
 */
export function setupSyncDatabase(options: SyncServiceOptions = {}): SyncContext {
  const ctx = {} as SyncContext;
  beforeAll(async () => {
    ctx.db = await createTestOrm();
    ctx.sync = new SyncService(ctx.db.orm.em, options);
  });
  afterAll(async () => {
    await ctx.db?.close();
  });
  return ctx;
}

/** A user id no other test uses, so tests of one file never see each other's vaults. */
export function newUserId(label = 'user'): string {
  return `${label}_${randomUUID()}`;
}

/** Enables a vault for a fresh user and returns the user's id. */
export async function newVault(sync: SyncService, label = 'user'): Promise<string> {
  const userId = newUserId(label);
  await sync.enableVault(userId, envelope());
  return userId;
}

/** Random bytes standing in for AES-GCM output: never equal to any other call's. */
export function bytes(size = 48): Buffer {
  return randomBytes(size);
}

/** A create (`baseVersion` 0) or update change. */
export function put(recordId: string, baseVersion: number, ciphertext: Buffer = bytes()): UpsertChange & { ciphertext: Buffer } {
  return { recordId, baseVersion, ciphertext };
}

/** A delete change. */
export function del(recordId: string, baseVersion: number): DeleteChange {
  return { recordId, baseVersion, deleted: true };
}

/** A record row as the database holds it. */
export interface StoredRecord {
  recordId: string;
  version: number;
  deleted: boolean;
  seq: number;
  bytes: number;
  ciphertext: Buffer;
}

/** Every record row of one user, by record id. */
export async function storedRecords(pool: pg.Pool, userId: string): Promise<Map<string, StoredRecord>> {
  const { rows } = await pool.query<{ record_id: string; version: number; deleted: boolean; seq: string; bytes: number; ciphertext: Buffer }>(
    `select record_id, version, deleted, seq, octet_length(ciphertext) as bytes, ciphertext
     from records where user_id = $1 order by record_id`,
    [userId],
  );
  return new Map(
    rows.map((r) => [r.record_id, { recordId: r.record_id, version: r.version, deleted: r.deleted, seq: Number(r.seq), bytes: r.bytes, ciphertext: r.ciphertext }]),
  );
}

/** One stored record, failing the test when it is missing. */
export async function storedRecord(pool: pg.Pool, userId: string, recordId: string): Promise<StoredRecord> {
  const record = (await storedRecords(pool, userId)).get(recordId);
  if (!record) throw new Error(`record ${recordId} of ${userId} is not in the database`);
  return record;
}

/**
 * A fingerprint of every row and column of both tables. Equal before and after a call means the
 * call wrote nothing at all, timestamps and feed counters included.
 */
export async function tableDigest(pool: pg.Pool): Promise<{ vaults: string; records: string }> {
  const { rows } = await pool.query<{ vaults: string; records: string }>(
    `select (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from vaults t) as vaults,
            (select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) from records t) as records`,
  );
  return rows[0] as { vaults: string; records: string };
}

/** Fingerprint of one user's record rows only. */
export async function recordsDigest(pool: pg.Pool, userId: string): Promise<string> {
  const { rows } = await pool.query<{ digest: string }>(
    `select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) as digest from records t where user_id = $1`,
    [userId],
  );
  return (rows[0] as { digest: string }).digest;
}

/** Fingerprint of one user's vault row only. */
export async function vaultDigest(pool: pg.Pool, userId: string): Promise<string> {
  const { rows } = await pool.query<{ digest: string }>(
    `select md5(coalesce(string_agg(t::text, ',' order by t.id), '')) as digest from vaults t where user_id = $1`,
    [userId],
  );
  return (rows[0] as { digest: string }).digest;
}

/** Everything the feed returned from a cursor, page by page, until `hasMore` was false. */
export interface Drained {
  changes: RecordState[];
  cursor: string;
  pageSizes: number[];
}

/** Pulls from `cursor` until `hasMore` is false. Bounded, so a feed that never ends fails the test. */
export async function pullAll(sync: SyncService, userId: string, cursor: string | null, page: Omit<PullInput, 'cursor'> = {}): Promise<Drained> {
  const changes: RecordState[] = [];
  const pageSizes: number[] = [];
  let next = cursor;
  for (let i = 0; i < 10_000; i++) {
    const result = await sync.pull(userId, { ...page, cursor: next });
    changes.push(...result.changes);
    pageSizes.push(result.changes.length);
    next = result.cursor;
    if (!result.hasMore) return { changes, cursor: next, pageSizes };
    // A page that says "more" must make progress, or a client would loop forever.
    expect(result.changes.length).toBeGreaterThan(0);
  }
  throw new Error('the feed never ended');
}

/** A change as a comparable value (Buffers compare by content in toEqual, Dates by time). */
export function summary(change: RecordState): { recordId: string; version: number; deleted: boolean; ciphertext: string | null } {
  return { recordId: change.recordId, version: change.version, deleted: change.deleted, ciphertext: change.ciphertext?.toString('hex') ?? null };
}

/** The rejection of `promise`, failing the test when it resolves (re-exported for the sync tests' one import). */
export { rejectionOf } from '../../support/rejection.js';
