/**
 * Helpers of the fault tests: read a vault's rows behind the service's back, decide whether a push
 * that failed applied completely or not at all, and check that a failure reached the caller as the
 * promised `TransientError`.
 */
import { expect, inject } from 'vitest';
import type pg from 'pg';
import { TransientError } from '../../src/errors.js';
import type { Change, PushResult } from '../../src/sync/types.js';
import { withDatabase } from '../../scripts/database-admin.js';

/**
 * Where a socket-cutting proxy (soak/tcp-proxy.ts) should forward the connections to database
 * `name`. A cut at a chosen protocol message (inside COMMIT, after COMMIT reached the server) has
 * to see the messages, which TLS hides. So on the Neon-shaped stack (a pooler in front of the
 * server) the proxy sits in front of the stack's PgBouncer without client TLS
 * (`NEON_STACK_PLAIN_URL`), as the issue asks: the cut is between the application and the pooler,
 * and PgBouncer's own link to PostgreSQL stays TLS. Elsewhere it sits in front of the server.
 */
export function cuttableUrl(db: { name: string; url: string }): string {
  const plainPooler = process.env.NEON_STACK_PLAIN_URL;
  const behindPooler = inject('pooledServerUrl') !== inject('serverUrl');
  return plainPooler && behindPooler ? withDatabase(plainPooler, db.name) : db.url;
}

/** A knex logger that swallows the "Connection Error" warnings the faults cause on purpose. */
export const quietKnexLog = { warn: () => {}, error: () => {}, deprecate: () => {}, debug: () => {} };

/** One record as the table holds it. */
export interface RowState {
  recordId: string;
  version: number;
  deleted: boolean;
  ciphertext: string;
  seq: number;
}

/** A vault's rows and feed head, read as the tables' owner. */
export interface VaultState {
  lastSeq: number;
  records: Map<string, RowState>;
}

/** Reads the vault of `userId` directly from the tables. */
export async function readVault(db: Pick<pg.Pool, 'query'>, userId: string): Promise<VaultState> {
  const head = await db.query<{ last_seq: string }>('select last_seq from vaults where user_id = $1', [userId]);
  const { rows } = await db.query<{ record_id: string; version: number; deleted: boolean; ciphertext: Buffer; seq: string }>(
    'select record_id, version, deleted, ciphertext, seq from records where user_id = $1 order by record_id',
    [userId],
  );
  return {
    lastSeq: Number(head.rows[0]?.last_seq ?? -1),
    records: new Map(rows.map((r) => [r.record_id, { recordId: r.record_id, version: r.version, deleted: r.deleted, ciphertext: r.ciphertext.toString('hex'), seq: Number(r.seq) }])),
  };
}

/**
 * Which of the two allowed states `after` is: `before` untouched (`'none'`), or every change of
 * `changes` written at `baseVersion + 1` with its content and a new feed position, nothing else
 * touched (`'all'`). Any other state (a torn push) fails the test.
 */
export function appliedHow(before: VaultState, after: VaultState, changes: Change[]): 'none' | 'all' {
  const same = (a: RowState | undefined, b: RowState | undefined) =>
    a?.version === b?.version && a?.deleted === b?.deleted && a?.ciphertext === b?.ciphertext && a?.seq === b?.seq;
  const touched = new Set(changes.map((c) => c.recordId));
  const others = [...new Set([...before.records.keys(), ...after.records.keys()])].filter((id) => !touched.has(id));
  for (const id of others) expect(same(after.records.get(id), before.records.get(id)), `record ${id} is not part of the push but changed`).toBe(true);

  if (after.lastSeq === before.lastSeq && changes.every((c) => same(after.records.get(c.recordId), before.records.get(c.recordId)))) return 'none';

  const problems: string[] = [];
  // A push gives a feed position to each row it writes, and to nothing else.
  if (after.lastSeq !== before.lastSeq + changes.length) problems.push(`last_seq went from ${before.lastSeq} to ${after.lastSeq}`);
  for (const change of changes) {
    const row = after.records.get(change.recordId);
    const deleted = 'deleted' in change && change.deleted === true;
    const content = deleted ? '' : Buffer.from((change as { ciphertext: Uint8Array }).ciphertext).toString('hex');
    if (!row || row.version !== change.baseVersion + 1 || row.deleted !== deleted || row.ciphertext !== content || row.seq <= before.lastSeq || row.seq > after.lastSeq) {
      problems.push(`${change.recordId}: ${row ? `v${row.version}${row.deleted ? ' deleted' : ''} seq ${row.seq}` : 'missing'}, expected v${change.baseVersion + 1}`);
    }
  }
  expect(problems, 'the push applied partly (a torn write)').toEqual([]);
  return 'all';
}

/** Describes an error for a failure message: constructor, code, message, and its causes. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e = error; e !== undefined && e !== null && parts.length < 5; e = (e as { cause?: unknown }).cause) {
    const x = e as { constructor?: { name?: string }; code?: unknown; message?: unknown };
    parts.push(`${x.constructor?.name ?? typeof e} (code ${String(x.code)}): ${String(x.message)}`);
  }
  return parts.join('\n  caused by ');
}

/**
 * Asserts the promised failure: a `TransientError` (code 'transient', retryable) with its cause
 * attached. Anything else is a classification bug in src/sync/transient.ts; the message names it.
 */
export function expectTransient(error: unknown): TransientError {
  expect(error instanceof TransientError, `expected a TransientError, but this escaped:\n  ${describeError(error)}`).toBe(true);
  const transient = error as TransientError;
  expect(transient.code).toBe('transient');
  expect(transient.retryable).toBe(true);
  expect(transient.cause, 'the TransientError carries its cause').toBeDefined();
  return transient;
}

/** Polls `condition` every 10 ms until it holds; fails the test after `timeoutMs`. */
export async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) expect.fail(`a condition did not hold within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The outcome of a call that may fail: its result, or the error. */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Awaits `promise` without throwing. */
export async function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Re-sends a push once, as a client does after a TransientError, and returns the answer; a failure
 * fails the test with the exact error (the pool should have recovered by itself).
 */
export async function resend<T>(call: () => Promise<T>): Promise<T> {
  const outcome = await settle(call());
  if (!outcome.ok) expect.fail(`the first re-send after the fault failed; the pool did not recover by itself:\n  ${describeError(outcome.error)}`);
  return outcome.value;
}

/** Asserts that a re-sent push reports every change applied at `baseVersion + 1`, with no conflict. */
export function expectIdempotentRetry(result: PushResult, changes: Change[]): void {
  expect(result.conflicts, 're-sending the same push reports no conflict').toEqual([]);
  expect(new Map(result.applied.map((a) => [a.recordId, a.version]))).toEqual(new Map(changes.map((c) => [c.recordId, c.baseVersion + 1])));
}
