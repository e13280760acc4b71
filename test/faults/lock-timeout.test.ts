/**
 * A push that waits on a locked vault longer than `lockTimeoutMs` fails fast with a retryable
 * TransientError (SQLSTATE 55P03 as its cause) instead of hanging, writes nothing, and succeeds
 * when re-sent after the lock is gone. Pulls don't wait on the vault lock at all.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { SyncService } from '../../src/sync/sync-service.js';
import type { Change } from '../../src/sync/types.js';
import { createTestOrm, type TestOrm } from '../support/database.js';
import { envelope } from '../support/fixtures.js';
import { appliedHow, expectIdempotentRetry, expectTransient, readVault, settle } from './support.js';

const LOCK_TIMEOUT_MS = 300;
const USER = 'lock_timeout_user';

let db: TestOrm;
let sync: SyncService;

beforeAll(async () => {
  // One pooled connection, so every call of the file runs on the same session.
  db = await createTestOrm({ pool: { min: 0, max: 1 } });
  sync = new SyncService(db.orm.em, { lockTimeoutMs: LOCK_TIMEOUT_MS });
  await sync.enableVault(USER, envelope());
  await sync.push(USER, { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: randomBytes(32) }] });
});

afterAll(async () => {
  await db?.close();
});

test('a push waiting on a held vault lock fails after lockTimeoutMs with a TransientError, and the re-send succeeds', async () => {
  const locker = new pg.Client(pgConnectionConfig(db.url));
  await locker.connect();
  const changes: Change[] = [
    { recordId: 'a', baseVersion: 1, ciphertext: randomBytes(32) },
    { recordId: 'b', baseVersion: 0, ciphertext: randomBytes(32) },
  ];
  try {
    await locker.query('begin');
    await locker.query('select 1 from vaults where user_id = $1 for update', [USER]);
    const before = await readVault(db.pool, USER);

    const started = Date.now();
    const outcome = await settle(sync.push(USER, { changes }));
    const waited = Date.now() - started;
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      const error = expectTransient(outcome.error);
      expect((error.cause as { code?: string }).code).toBe('55P03');
      expect(error.message).toMatch(/lock/i);
    }
    expect(waited).toBeGreaterThanOrEqual(LOCK_TIMEOUT_MS - 50);
    expect(waited).toBeLessThan(LOCK_TIMEOUT_MS + 2500);
    expect(appliedHow(before, await readVault(db.pool, USER), changes)).toBe('none');

    // Readers never queue behind the writer's lock.
    const readStarted = Date.now();
    const page = await sync.pull(USER);
    expect(page.changes.map((c) => c.recordId)).toEqual(['a']);
    expect(Date.now() - readStarted).toBeLessThan(LOCK_TIMEOUT_MS);
  } finally {
    await locker.query('rollback').catch(() => {});
    await locker.end();
  }
  expectIdempotentRetry(await sync.push(USER, { changes }), changes);
});

test('the lock wait applies to the call only: the pooled session keeps no lock_timeout afterwards', async () => {
  // lock_timeout is set with set_config(..., true), so it ends with the transaction.
  const conn = db.orm.em.fork().getConnection();
  const rows = await conn.execute<{ lock_timeout: string }[]>('show lock_timeout');
  expect(rows[0]?.lock_timeout).toBe('0');
});
