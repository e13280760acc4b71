/**
 * Fault injection (a): the backend serving a push is killed with `pg_terminate_backend` from
 * another connection. Chosen points are made deterministic with gates the test adds to its own
 * database (a row lock, an advisory lock taken by a row trigger, and one taken by a deferred
 * constraint trigger, i.e. inside COMMIT); then random points of many pushes. Each time: the push
 * applied completely or not at all, the caller got a TransientError with its cause, re-sending the
 * same push succeeded idempotently, and the pool recovered by itself.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { SyncService } from '../../src/sync/sync-service.js';
import type { Change } from '../../src/sync/types.js';
import { appBackends, terminateBackend, waitForBackend } from '../../soak/faults.js';
import { Rng, sleep } from '../../soak/random.js';
import { createTestOrm, type TestOrm } from '../support/database.js';
import { envelope } from '../support/fixtures.js';
import { appliedHow, expectIdempotentRetry, expectTransient, quietKnexLog, readVault, resend, settle, waitUntil } from './support.js';

const APP = 'fault-test-terminate';
const FLUSH_GATE = 4242;
const COMMIT_GATE = 4243;

let db: TestOrm;
let sync: SyncService;
/** A connection of its own that holds locks and kills backends. */
let admin: pg.Client;

/** The test ORM's pool size: at most this many connections can be found dead at once. */
const POOL_MAX = 4;

beforeAll(async () => {
  db = await createTestOrm({ pool: { min: 0, max: POOL_MAX }, driverOptions: { connection: { application_name: APP }, log: quietKnexLog } });
  // Several calls of one vault fill the pool on purpose; the per-vault gate would refuse them.
  sync = new SyncService(db.orm.em, { lockTimeoutMs: 10_000, maxConcurrentCallsPerVault: 64 });
  admin = new pg.Client({ ...pgConnectionConfig(db.url), application_name: 'fault-test-admin' });
  admin.on('error', () => {});
  await admin.connect();
  // Test-only gates: a row trigger that waits for an advisory lock while the INSERT/UPDATE of a
  // "gate-" record runs, and a deferred constraint trigger that waits for another during COMMIT.
  await admin.query(`
    create function fault_flush_gate() returns trigger language plpgsql as $$
    begin
      if new.record_id like 'gate-%' then perform pg_advisory_xact_lock_shared(${FLUSH_GATE}); end if;
      return new;
    end $$;
    create trigger fault_flush_gate before insert or update on records for each row execute function fault_flush_gate();
    create function fault_commit_gate() returns trigger language plpgsql as $$
    begin
      if new.record_id like 'commitgate-%' then perform pg_advisory_xact_lock_shared(${COMMIT_GATE}); end if;
      return null;
    end $$;
    create constraint trigger fault_commit_gate after insert or update on records deferrable initially deferred
      for each row execute function fault_commit_gate();`);
});

afterAll(async () => {
  await admin?.end();
  await db?.close();
});

let users = 0;
async function newVault(): Promise<string> {
  // Let the driver notice connections an earlier test killed, so a test starts from a settled pool.
  await sleep(100);
  const userId = `terminate_${++users}`;
  await sync.enableVault(userId, envelope());
  return userId;
}

const bytes = () => randomBytes(48);

/**
 * Runs `push` while `block` holds it at a known point, kills its backend there, and checks the
 * promises: nothing applied, a TransientError, a successful idempotent re-send, a working pool.
 */
async function killAt(userId: string, changes: Change[], block: { hold: () => Promise<void>; release: () => Promise<void>; waiting: (query: string) => boolean }) {
  const before = await readVault(db.pool, userId);
  await block.hold();
  let released = false;
  try {
    const pending = settle(sync.push(userId, { changes }));
    const victim = await waitForBackend(admin, APP, (b) => b.waitEventType === 'Lock' && block.waiting(b.query));
    expect(await terminateBackend(admin, victim.pid)).toBe(true);
    const outcome = await pending;
    expect(outcome.ok, 'the push whose backend was killed must fail').toBe(false);
    if (!outcome.ok) expectTransient(outcome.error);
    // Checked while the gate is still closed: the killed transaction is gone, not just waiting.
    expect(appliedHow(before, await readVault(db.pool, userId), changes)).toBe('none');
    await block.release();
    released = true;
    expectIdempotentRetry(await resend(() => sync.push(userId, { changes })), changes);
    expect(appliedHow(before, await readVault(db.pool, userId), changes)).toBe('all');
    // The pool recovered: more calls on fresh or surviving connections work.
    const pulled = await sync.pull(userId);
    expect(pulled.changes.map((c) => c.recordId).sort()).toEqual(expect.arrayContaining(changes.map((c) => c.recordId)));
  } finally {
    if (!released) await block.release();
  }
}

describe('pg_terminate_backend at chosen points of a push', () => {
  test('while it waits for the vault row lock', async () => {
    const userId = await newVault();
    await sync.push(userId, { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: bytes() }] });
    const locker = new pg.Client(pgConnectionConfig(db.url));
    await locker.connect();
    try {
      await killAt(userId, [{ recordId: 'a', baseVersion: 1, ciphertext: bytes() }, { recordId: 'b', baseVersion: 0, ciphertext: bytes() }], {
        hold: async () => {
          await locker.query('begin');
          await locker.query('select 1 from vaults where user_id = $1 for update', [userId]);
        },
        release: async () => void (await locker.query('rollback')),
        waiting: (query) => query.includes('from vaults where user_id = c.verified for update'),
      });
    } finally {
      await locker.end();
    }
  });

  test('halfway through the flush, after its first rows were written', async () => {
    const userId = await newVault();
    await sync.push(userId, { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: bytes() }, { recordId: 'c', baseVersion: 0, ciphertext: bytes() }] });
    // 'b' precedes 'gate-x' in the same INSERT, and 'a' and 'c' change too (an update and a delete).
    const changes: Change[] = [
      { recordId: 'a', baseVersion: 1, ciphertext: bytes() },
      { recordId: 'c', baseVersion: 1, deleted: true },
      { recordId: 'b', baseVersion: 0, ciphertext: bytes() },
      { recordId: 'gate-x', baseVersion: 0, ciphertext: bytes() },
    ];
    await killAt(userId, changes, {
      hold: async () => void (await admin.query('select pg_advisory_lock($1)', [FLUSH_GATE])),
      release: async () => void (await admin.query('select pg_advisory_unlock($1)', [FLUSH_GATE])),
      waiting: (query) => query.startsWith('insert into "records"'),
    });
  });

  test('during COMMIT, while its deferred checks run', async () => {
    const userId = await newVault();
    await sync.push(userId, { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: bytes() }] });
    await killAt(userId, [{ recordId: 'a', baseVersion: 1, ciphertext: bytes() }, { recordId: 'commitgate-1', baseVersion: 0, ciphertext: bytes() }], {
      hold: async () => void (await admin.query('select pg_advisory_lock($1)', [COMMIT_GATE])),
      release: async () => void (await admin.query('select pg_advisory_unlock($1)', [COMMIT_GATE])),
      waiting: (query) => /^commit/i.test(query),
    });
  });
});

test('pg_terminate_backend at random points of 20 pushes: each applies completely or not at all', async () => {
  const userId = await newVault();
  const rng = new Rng(20261127);
  const live = new Map<string, number>();
  const tally = { killed: 0, none: 0, all: 0, succeeded: 0 };
  for (let i = 0; i < 20; i++) {
    // Two edits of live records, one delete when there are enough, and one create.
    const changes: Change[] = rng.sample([...live.keys()], 2).map((id) => ({ recordId: id, baseVersion: live.get(id) as number, ciphertext: bytes() }));
    const deletable = [...live.keys()].filter((id) => !changes.some((c) => c.recordId === id));
    if (deletable.length > 3) {
      const id = rng.pick(deletable);
      changes.push({ recordId: id, baseVersion: live.get(id) as number, deleted: true });
    }
    changes.push({ recordId: `r${String(i).padStart(3, '0')}`, baseVersion: 0, ciphertext: bytes() });

    const before = await readVault(db.pool, userId);
    const pending = settle(sync.push(userId, { changes }));
    // The killer strikes whatever the push is doing a random moment after it started.
    await sleep(rng.int(0, 12));
    const busy = (await appBackends(admin, APP)).filter((b) => b.inTransaction);
    for (const b of busy) if (await terminateBackend(admin, b.pid)) tally.killed++;
    const outcome = await pending;
    // Judge the state once the killed session is gone (a kill during COMMIT may still be finishing).
    await waitUntil(async () => (await appBackends(admin, APP)).every((b) => !busy.some((k) => k.pid === b.pid)));
    const how = appliedHow(before, await readVault(db.pool, userId), changes);
    tally[how]++;
    if (outcome.ok) {
      tally.succeeded++;
      expect(how).toBe('all');
    } else {
      expectTransient(outcome.error);
    }
    // The same push again, on whatever connection the pool hands out now.
    expectIdempotentRetry(await resend(() => sync.push(userId, { changes })), changes);
    for (const c of changes) {
      if ('deleted' in c && c.deleted) live.delete(c.recordId);
      else live.set(c.recordId, c.baseVersion + 1);
    }
  }
  // Timing decides where the kills land; make sure the run exercised the interesting cases.
  expect(tally.killed, JSON.stringify(tally)).toBeGreaterThan(3);
  expect(tally.none, JSON.stringify(tally)).toBeGreaterThan(0);
}, 30_000);

test('the pool recovers after every pooled connection was terminated between calls', async () => {
  const userId = await newVault();
  // Fill the pool with a few connections, then kill them all while they sit idle.
  await Promise.all([0, 1, 2].map((i) => sync.push(userId, { changes: [{ recordId: `idle-${i}`, baseVersion: 0, ciphertext: bytes() }] }).catch(() => sync.pull(userId))));
  const idle = await appBackends(admin, APP);
  expect(idle.length).toBeGreaterThan(0);
  for (const b of idle) await terminateBackend(admin, b.pid);
  await sleep(50);
  // Every call after that works without the caller doing anything about it.
  for (let i = 0; i < 5; i++) {
    const changes: Change[] = [{ recordId: `after-${i}`, baseVersion: 0, ciphertext: bytes() }];
    expectIdempotentRetry(await resend(() => sync.push(userId, { changes })), changes);
  }
  expect((await sync.pull(userId)).changes.length).toBeGreaterThanOrEqual(5);
});

test('a call that lands on a connection terminated a moment earlier fails as TransientError, never as a raw error', async () => {
  const userId = await newVault();
  const tally = { ok: 0, transient: 0 };
  for (let i = 0; i < 10; i++) {
    await sync.pull(userId);
    // Kill the idle pooled connections and call at once, before the driver has noticed.
    for (const b of await appBackends(admin, APP)) await terminateBackend(admin, b.pid);
    const changes: Change[] = [{ recordId: `race-${i}`, baseVersion: 0, ciphertext: bytes() }];
    const outcome = await settle(sync.push(userId, { changes }));
    if (outcome.ok) {
      tally.ok++;
    } else {
      expectTransient(outcome.error);
      tally.transient++;
    }
    // Every idle connection was killed, and on a loaded machine the driver may not have read their
    // FATAL messages yet: a re-send can land on another dead one. Each dead connection fails one
    // call as a TransientError and is then retired, so within the pool's size plus one re-sends
    // the pool has recovered by itself.
    let resent = await settle(sync.push(userId, { changes }));
    for (let attempt = 1; !resent.ok && attempt <= POOL_MAX; attempt++) {
      expectTransient(resent.error);
      resent = await settle(sync.push(userId, { changes }));
    }
    if (!resent.ok) expect.fail(`the pool did not recover within ${POOL_MAX + 1} re-sends`);
    expectIdempotentRetry(resent.value, changes);
  }
  expect(tally.ok + tally.transient).toBe(10);
});
