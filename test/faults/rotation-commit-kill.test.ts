/**
 * A staged key rotation's commit is all or nothing under a killed connection (issue #9.4): the
 * backend running `commitKeyRotation` is killed with `pg_terminate_backend` while the swap of the
 * staged records waits on a row (others of the same UPDATE may already be rewritten), and while
 * its COMMIT runs its deferred checks. Each time the caller gets `TransientError`; the records, the envelope and the
 * key version are exactly as before; the staged records are still there; and re-sending the same
 * commit succeeds.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { terminateBackend, waitForBackend } from '../../soak/faults.js';
import { sleep } from '../../soak/random.js';
import { createTestOrm, type TestOrm } from '../support/database.js';
import { envelope } from '../support/fixtures.js';
import { expectTransient, quietKnexLog, resend, settle } from './support.js';

const APP = 'fault-test-rotation';
const SWAP_GATE = 4252;
const COMMIT_GATE = 4253;

let db: TestOrm;
let sync: SyncService;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestOrm({ pool: { min: 0, max: 4 }, driverOptions: { connection: { application_name: APP }, log: quietKnexLog } });
  sync = new SyncService(db.orm.em, { lockTimeoutMs: 10_000 });
  admin = new pg.Client({ ...pgConnectionConfig(db.url), application_name: 'fault-test-admin' });
  admin.on('error', () => {});
  await admin.connect();
  // Test-only gates: a row trigger that waits for an advisory lock while a "gate-" record is
  // rewritten by the swap, and a deferred constraint trigger that waits for another during COMMIT.
  await admin.query(`
    create function fault_swap_gate() returns trigger language plpgsql as $$
    begin
      if new.record_id like 'gate-%' and new.version > old.version then perform pg_advisory_xact_lock_shared(${SWAP_GATE}); end if;
      return new;
    end $$;
    create trigger fault_swap_gate before update on records for each row execute function fault_swap_gate();
    create function fault_rotation_commit_gate() returns trigger language plpgsql as $$
    begin
      if new.record_id like 'commitgate-%' and new.version > old.version then perform pg_advisory_xact_lock_shared(${COMMIT_GATE}); end if;
      return null;
    end $$;
    create constraint trigger fault_rotation_commit_gate after update on records deferrable initially deferred
      for each row execute function fault_rotation_commit_gate();`);
});

afterAll(async () => {
  await admin?.end();
  await db?.close();
});

/** Everything the commit may change, read as the owner. */
async function snapshot(userId: string): Promise<string> {
  const { rows } = await db.pool.query<{ s: string }>(
    `select (select row(wrapped_key, salt, kdf_params, version, key_version, last_seq, record_count, stored_bytes)::text from vaults where user_id = $1)
         || ' ' || coalesce((select string_agg(row(record_id, version, deleted, seq, md5(ciphertext))::text, ',' order by record_id) from records where user_id = $1), '')
         || ' ' || coalesce((select string_agg(row(record_id, base_version, md5(ciphertext))::text, ',' order by record_id) from staged_records where user_id = $1), '') as s`,
    [userId],
  );
  return (rows[0] as { s: string }).s;
}

async function killCommitAt(gate: number, gateRecord: string, waiting: (query: string) => boolean): Promise<void> {
  await sleep(100);
  const userId = `rotation_kill_${randomBytes(4).toString('hex')}`;
  await sync.enableVault(userId, envelope());
  const ids = ['a', 'b', gateRecord, 'z'];
  await sync.push(userId, { changes: ids.map((recordId) => ({ recordId, baseVersion: 0, ciphertext: randomBytes(48) })) });
  const { rotationId } = await sync.beginKeyRotation(userId, { expectedVersion: 1 });
  const staged = ids.map((recordId) => ({ recordId, baseVersion: 1, ciphertext: randomBytes(48) }));
  await sync.stageKeyRotation(userId, { rotationId, records: staged });
  const next = envelope();
  const before = await snapshot(userId);

  await admin.query('select pg_advisory_lock($1)', [gate]);
  let released = false;
  try {
    const pending = settle(sync.commitKeyRotation(userId, { rotationId, expectedVersion: 1, ...next }));
    const victim = await waitForBackend(admin, APP, (b) => b.waitEventType === 'Lock' && waiting(b.query));
    expect(await terminateBackend(admin, victim.pid)).toBe(true);
    const outcome = await pending;
    expect(outcome.ok, 'the commit whose backend was killed must fail').toBe(false);
    if (!outcome.ok) expectTransient(outcome.error);
    // Nothing of the commit is left: not one record, not the envelope, and the staged set is whole.
    expect(await snapshot(userId)).toBe(before);
    await admin.query('select pg_advisory_unlock($1)', [gate]);
    released = true;

    const info = await resend(() => sync.commitKeyRotation(userId, { rotationId, expectedVersion: 1, ...next }));
    expect(info).toMatchObject({ version: 2, keyVersion: 2 });
    const { rows } = await db.pool.query<{ record_id: string; version: number; ciphertext: Buffer }>('select record_id, version, ciphertext from records where user_id = $1 order by record_id', [userId]);
    expect(rows.map((r) => [r.record_id, r.version, r.ciphertext.toString('hex')])).toEqual(
      staged.map((s) => [s.recordId, 2, s.ciphertext.toString('hex')]).sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
  } finally {
    if (!released) await admin.query('select pg_advisory_unlock($1)', [gate]);
  }
}

test('killed halfway through the swap of the staged records: nothing changed, and the re-sent commit succeeds', async () => {
  await killCommitAt(SWAP_GATE, 'gate-m', (query) => query.startsWith('update records r'));
});

test('killed during COMMIT, while its deferred checks run: nothing changed, and the re-sent commit succeeds', async () => {
  await killCommitAt(COMMIT_GATE, 'commitgate-m', (query) => /^commit/i.test(query));
});
