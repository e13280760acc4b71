/**
 * A push reads only the records it names: the cost of a push grows with the push, not with the
 * vault. Loading the whole vault on every push (a `recordId` filter lost from the query) returns
 * the same results, so only the statement and the rows it returned can show it. Both are read from
 * MikroORM's query log on a second ORM connected to the same test database.
 */
import { beforeAll, expect, test } from 'vitest';
import type { SyncService } from '../../src/sync/sync-service.js';
import { del, newVault, put, setupSyncDatabase } from './support/sync.js';
import { setupLoggedService } from './support/statement-log.js';

const ctx = setupSyncDatabase();
const logged = setupLoggedService(ctx);
let sync: SyncService;
beforeAll(() => {
  sync = logged.sync;
});

/**
 * Each load of record entities (`select "v0".* from "records"`) the ORM sent while `work` ran,
 * with the number of rows it returned. The flush's own version check selects ids only.
 */
async function recordReads(work: () => Promise<unknown>): Promise<{ sql: string; rows: number }[]> {
  const queries = await logged.logLinesOf(work);
  return queries
    .filter((l) => l.startsWith('select "v0".* from "records"'))
    .map((l) => {
      // The log line ends with " [took 1 ms, 3 results]" (or "1 result", or no count for none).
      const count = / \[took [^\]]*?(?:, (\d+) results?)?\]$/.exec(l);
      expect(count, l).not.toBeNull();
      return { sql: l, rows: Number(count?.[1] ?? 0) };
    });
}

test('a push to a vault of 60 records reads the records it names, and no others', async () => {
  const user = await newVault(sync);
  await sync.push(user, { changes: Array.from({ length: 60 }, (_, i) => put(`r${i}`, 0)) });

  const reads = await recordReads(async () => {
    const result = await sync.push(user, { changes: [put('r7', 1), del('r8', 1), put('new', 0)] });
    expect(result.conflicts).toEqual([]);
    expect(result.applied).toHaveLength(3);
  });
  expect(reads).toHaveLength(1);
  const [read] = reads as [{ sql: string; rows: number }];
  // Two of the three named records exist; the other 58 of the vault are never loaded.
  expect(read.rows).toBe(2);
  expect(read.sql).toMatch(/ where "v0"\."vault_id" = \$1 and "v0"\."record_id" in \(\$2, \$3, \$4\) \[/);
});

test('an empty push reads no record at all', async () => {
  const user = await newVault(sync);
  await sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  expect(await recordReads(() => sync.push(user, { changes: [] }))).toEqual([]);
});
