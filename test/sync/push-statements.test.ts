/**
 * One push is one transaction and one flush of the unit of work: the number of SQL statements
 * does not grow with the number of changes. Counted from MikroORM's own query log, on a second
 * ORM connected to the same test database.
 */
import { beforeAll, expect, test } from 'vitest';
import type { SyncService } from '../../src/sync/sync-service.js';
import type { Change } from '../../src/sync/types.js';
import { del, newVault, put, setupSyncDatabase, storedRecords } from './support/sync.js';
import { setupLoggedService } from './support/statement-log.js';

const ctx = setupSyncDatabase();
const logged = setupLoggedService(ctx);
let sync: SyncService;
beforeAll(() => {
  sync = logged.sync;
});
const statementsOf = (work: () => Promise<unknown>) => logged.statementsOf(work);

const count = (statements: string[], prefix: string) => statements.filter((s) => s.startsWith(prefix)).length;

/**
 * A vault holding `size` records, and a push of `size` changes against it: a third creates, a
 * third updates, a third deletes, so every kind of write is in the same flush.
 */
async function mixedPush(size: number): Promise<{ user: string; changes: Change[] }> {
  const user = await newVault(sync);
  await sync.push(user, { changes: Array.from({ length: size }, (_, i) => put(`old-${i}`, 0)) });
  const changes: Change[] = Array.from({ length: size }, (_, i) => {
    if (i % 3 === 0) return put(`new-${i}`, 0);
    if (i % 3 === 1) return put(`old-${i}`, 1);
    return del(`old-${i}`, 1);
  });
  return { user, changes };
}

test('a push of 10, 200 or 1000 (the maximum) changes sends the same six statements: one transaction, settings with the lock, one read, one INSERT, one UPDATE', async () => {
  const perSize = new Map<number, string[]>();
  for (const size of [10, 200, 1000]) {
    const { user, changes } = await mixedPush(size);
    const statements = await statementsOf(async () => {
      const result = await sync.push(user, { changes });
      expect(result.applied).toHaveLength(size);
      expect(result.conflicts).toEqual([]);
    });
    perSize.set(size, statements);

    // One transaction around everything...
    expect(statements[0]).toBe('begin');
    expect(statements.at(-1)).toBe('commit');
    expect(count(statements, 'begin')).toBe(1);
    expect(count(statements, 'commit')).toBe(1);
    // ...and one flush: every create in one INSERT, every update and delete in one UPDATE.
    expect(count(statements, 'insert into "records"')).toBe(1);
    expect(count(statements, 'update "records"')).toBe(1);
    // The vault is locked by a read, never written by the service: its counters are the triggers'.
    // The same statement makes the transaction's settings and checks the claim first (issue 10).
    expect(statements.filter((s) => /\bfor update\b/.test(s))).toEqual([statements[1]]);
    expect(statements[1]).toMatch(/set_config\('app\.user_id', \?, true\), set_config\('app\.user_claim', \?, true\), set_config\('lock_timeout', \?, true\)/);
    expect(statements[1]).toMatch(/left join lateral \(select id, last_seq, purged_seq, version_floor, key_version, record_count, stored_bytes from vaults where user_id = c\.verified for update\)/);
    expect(statements.filter((s) => s.includes('set_config'))).toHaveLength(1);
    expect(statements.filter((s) => /^update "?vaults"?/.test(s))).toEqual([]);
    // The version check rides on the batched UPDATE: no lock-check SELECT of its own.
    expect(statements.filter((s) => s.includes('select distinct id, version from unnest') || s.startsWith('select "v0"."id" from "records"'))).toEqual([]);
    expect(statements.find((s) => s.startsWith('update "records"'))).toMatch(/r\."version" = u\.expected/);
    // BEGIN, settings with the lock, read, INSERT, UPDATE, COMMIT.
    expect(statements).toHaveLength(6);

    // The statements really did all the work (nothing was skipped or deferred).
    const rows = await storedRecords(ctx.db.pool, user);
    expect([...rows.values()].filter((r) => r.deleted)).toHaveLength(Math.floor(size / 3));
    expect(rows.size).toBe(size + Math.ceil(size / 3));
  }
  const counts = [...perSize.values()].map((s) => s.length);
  expect(new Set(counts).size).toBe(1);
});

test('a push of creates only sends no UPDATE of records, and a push of updates only sends no INSERT', async () => {
  const user = await newVault(sync);
  const creates = await statementsOf(() => sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0)] }));
  expect(count(creates, 'insert into "records"')).toBe(1);
  expect(count(creates, 'update "records"')).toBe(0);
  const updates = await statementsOf(() => sync.push(user, { changes: [put('a', 1), put('b', 1), del('c', 1)] }));
  expect(count(updates, 'insert into "records"')).toBe(0);
  expect(count(updates, 'update "records"')).toBe(1);
});

test('a push whose every change conflicts writes no record statement at all', async () => {
  const user = await newVault(sync);
  await sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  const statements = await statementsOf(() => sync.push(user, { changes: [put('a', 0), put('b', 9), put('c', 4)] }));
  expect(count(statements, 'insert into "records"')).toBe(0);
  expect(count(statements, 'update "records"')).toBe(0);
  expect(count(statements, 'delete')).toBe(0);
  // BEGIN, settings with the lock, read, COMMIT.
  expect(statements).toHaveLength(4);
});

test('a pull is three statements: BEGIN, the settings with the page, COMMIT', async () => {
  const { user, changes } = await mixedPush(30);
  await sync.push(user, { changes });
  const statements = await statementsOf(async () => {
    const page = await sync.pull(user, { cursor: null });
    expect(page.changes).toHaveLength(40);
  });
  expect(statements).toHaveLength(3);
  expect(statements[0]).toBe('begin');
  expect(statements[1]).toMatch(/set_config\('app\.user_claim', \?, true\)/);
  expect(statements[1]).toMatch(/from records r/);
  expect(statements[2]).toBe('commit');
});
