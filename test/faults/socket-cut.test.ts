/**
 * Fault injection (b): an in-process TCP proxy between the ORM and PostgreSQL cuts the socket after
 * a chosen number of bytes of a push: inside BEGIN, inside a statement, between statements, inside
 * COMMIT, and after COMMIT reached the server but before its answer came back (the commit happened,
 * the caller can't know). Each time: the push applied completely or not at all, the caller got a
 * TransientError with its cause (or the push succeeded, when the cut came after its last byte),
 * re-sending the same push succeeded idempotently, and the pool recovered by itself.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import type pg from 'pg';
import { createConfig } from '../../src/config.js';
import { SyncService } from '../../src/sync/sync-service.js';
import type { Change } from '../../src/sync/types.js';
import { appBackends } from '../../soak/faults.js';
import { Rng } from '../../soak/random.js';
import { TcpProxy, type CutDirection } from '../../soak/tcp-proxy.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';
import { envelope } from '../support/fixtures.js';
import { appliedHow, cuttableUrl, expectIdempotentRetry, expectTransient, quietKnexLog, readVault, resend, settle, waitUntil } from './support.js';

let db: TestDatabase;
let proxy: TcpProxy;
let orm: MikroORM;
let sync: SyncService;
let direct: pg.Pool;
const USER = 'socket_cut_user';
const APP = 'fault-test-socket-cut';
/** Bytes a reference push sends and receives on a warm connection. */
const size = { up: 0, down: 0 };

let counter = 0;
/** A push of the same shape every time (same byte count): an edit, a delete and a create. */
async function nextPush(): Promise<Change[]> {
  const state = await readVault(direct, USER);
  const live = [...state.records.values()].filter((r) => !r.deleted).sort((a, b) => a.recordId.localeCompare(b.recordId));
  const [edit, gone] = live as [(typeof live)[number], (typeof live)[number]];
  return [
    { recordId: edit.recordId, baseVersion: edit.version, ciphertext: randomBytes(64) },
    { recordId: gone.recordId, baseVersion: gone.version, deleted: true },
    { recordId: `rec-${String(++counter).padStart(5, '0')}`, baseVersion: 0, ciphertext: randomBytes(64) },
  ];
}

beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await TcpProxy.start(cuttableUrl(db));
  // One connection, so the bytes of a push are the same every time and a cut always hits it.
  orm = await MikroORM.init(createConfig(proxy.rewrite(cuttableUrl(db)), { pool: { min: 0, max: 1 }, driverOptions: { connection: { application_name: APP }, log: quietKnexLog } }));
  sync = new SyncService(orm.em);
  direct = testPool(db.url, 2);
  await sync.enableVault(USER, envelope());
  await sync.push(USER, { changes: ['rec-90001', 'rec-90002', 'rec-90003'].map((recordId) => ({ recordId, baseVersion: 0, ciphertext: randomBytes(64) })) });
  // Measure a reference push on a warm connection.
  const changes = await nextPush();
  const before = proxy.stats;
  await sync.push(USER, { changes });
  const after = proxy.stats;
  size.up = after.bytesUp - before.bytesUp;
  size.down = after.bytesDown - before.bytesDown;
  // Keep enough live records for every push of the file (each deletes one, creates one).
  await sync.push(USER, { changes: Array.from({ length: 5 }, (_, i) => ({ recordId: `rec-9100${i}`, baseVersion: 0, ciphertext: randomBytes(64) })) });
});

afterAll(async () => {
  await orm?.close(true);
  await proxy?.close();
  await direct?.end();
  await db?.drop();
});

const tally = { rolledBack: 0, committedButLost: 0, succeeded: 0 };

/** Arms a cut, runs the next push, and checks every promise. */
async function cutPush(arm: () => Promise<boolean>): Promise<void> {
  await sync.pull(USER, { limit: 1 }); // the one pooled connection is open and idle
  const changes = await nextPush();
  const before = await readVault(direct, USER);
  const fired = arm();
  const outcome = await settle(sync.push(USER, { changes }));
  proxy.disarm();
  const cut = await fired;
  // The client may hear of the cut before the server has finished with what it received (say a
  // COMMIT): judge the state once the cut session is gone.
  await waitUntil(async () => (await appBackends(direct, APP)).every((b) => !b.inTransaction));
  const how = appliedHow(before, await readVault(direct, USER), changes);
  if (outcome.ok) {
    // Only a cut after the push's last byte lets it succeed; the cut then lands on a later call.
    expect(how).toBe('all');
    tally.succeeded++;
  } else {
    expect(cut, 'a push failed although no cut fired').toBe(true);
    expectTransient(outcome.error);
    if (how === 'all') tally.committedButLost++;
    else tally.rolledBack++;
  }
  expectIdempotentRetry(await resend(() => sync.push(USER, { changes })), changes);
  expect(appliedHow(before, await readVault(direct, USER), changes)).toBe('all');
  const page = await resend(() => sync.pull(USER, { limit: 1 }));
  expect(page.changes.length).toBe(1);
}

const cutPushAt = (bytes: number, direction: CutDirection) => cutPush(() => proxy.cutAfter(bytes, direction));

describe('a socket cut at a chosen point of a push', () => {
  test('the reference push was measured', () => {
    expect(size.up).toBeGreaterThan(100);
    expect(size.down).toBeGreaterThan(100);
  });

  test('before BEGIN reaches the server', () => cutPushAt(0, 'up'));
  test('in the middle of the BEGIN message', () => cutPush(() => proxy.cutAfterMatch('BEG', 'up')));
  test('after BEGIN reached the server, before its answer', () => cutPush(() => proxy.cutAfterMatch('BEGIN', 'up', 2)));
  test("after BEGIN's answer, before the server said it is ready", () => cutPush(() => proxy.cutAfterMatch('BEGIN', 'down', 1)));

  test.each(Array.from({ length: 7 }, (_, i) => i + 1))('client to server, at step %i of 8 through the push', (step) =>
    cutPushAt(Math.floor((size.up * step) / 8), 'up'),
  );

  test.each(Array.from({ length: 7 }, (_, i) => i + 1))('server to client, at step %i of 8 through the push', (step) =>
    cutPushAt(Math.floor((size.down * step) / 8), 'down'),
  );

  test('in the middle of the COMMIT message', () => cutPush(() => proxy.cutAfterMatch('COMM', 'up')));
  // The transaction is committed; the caller never hears of it, and must re-send.
  test('after COMMIT reached the server, before its answer', () => cutPush(() => proxy.cutAfterMatch('COMMIT;', 'up', 1)));
  test("after COMMIT's answer, before the server said it is ready", () => cutPush(() => proxy.cutAfterMatch('COMMIT', 'down', 1)));

  test('the cuts covered both outcomes: rolled back, and committed with the answer lost', () => {
    expect(tally.rolledBack, JSON.stringify(tally)).toBeGreaterThan(8);
    expect(tally.committedButLost, JSON.stringify(tally)).toBeGreaterThanOrEqual(2);
  });
});

test('a random cut in either direction, 12 times over', async () => {
  const rng = new Rng(7);
  for (let i = 0; i < 12; i++) {
    const direction = rng.pick<CutDirection>(['up', 'down', 'any']);
    const total = direction === 'up' ? size.up : direction === 'down' ? size.down : size.up + size.down;
    await cutPushAt(rng.int(0, total + 20), direction);
  }
}, 30_000);
