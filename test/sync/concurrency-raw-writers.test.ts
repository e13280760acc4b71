/**
 * The feed stays gap-free when raw SQL writers and the service write the same vault at once
 * (issue #9.2): raw INSERTs of the ticket's four columns and raw UPDATEs of content, through plain
 * `pg`, interleave with service pushes, while a device keeps pulling in small pages. The device
 * must see every committed change exactly once, in order, and end with exactly the database's
 * state. Records written once and never again make a skipped change visible: it would be missing
 * from the device's final view.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, test } from 'vitest';
import type pg from 'pg';
import type { Change, RecordState } from '../../src/sync/types.js';
import { bytes, del, newVault, put, setupSyncDatabase } from './support/sync.js';

// Seven writers and a reader share one vault from one process; the per-vault gate (meant for one
// device's calls) would refuse most of them, so it is opened wide as in the other concurrency tests.
const ctx = setupSyncDatabase({ maxConcurrentCallsPerVault: 64 });

const SERVICE_WRITERS = 3;
const RAW_INSERTERS = 2;
const RAW_UPDATERS = 2;
const ROUNDS = 12;

interface Seen {
  version: number;
  deleted: boolean;
}

/** Retries a raw transaction that PostgreSQL chose as a deadlock or serialization victim. */
async function rawTransaction(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const client = await pool.connect();
    try {
      await client.query('begin');
      await work(client);
      await client.query('commit');
      return;
    } catch (error) {
      await client.query('rollback').catch(() => {});
      const code = (error as { code?: string }).code;
      if (attempt >= 5 || (code !== '40P01' && code !== '40001')) throw error;
    } finally {
      client.release();
    }
  }
}

test(`a device pulling while ${SERVICE_WRITERS} service writers, ${RAW_INSERTERS} raw inserters and ${RAW_UPDATERS} raw updaters write one vault sees every change exactly once`, async () => {
  const user = await newVault(ctx.sync);
  const { rows } = await ctx.db.pool.query<{ id: string }>('select id from vaults where user_id = $1', [user]);
  const vaultId = (rows[0] as { id: string }).id;
  // Records only the raw updaters touch, created the ticket's way.
  const rawShared = ['rs0', 'rs1', 'rs2', 'rs3'];
  for (const id of rawShared) await ctx.db.pool.query('insert into records (user_id, vault_id, record_id, ciphertext) values ($1, $2, $3, $4)', [user, vaultId, id, bytes()]);

  const seen = new Map<string, Seen>();
  const problems: string[] = [];
  let cursor: string | null = null;
  const drain = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const page = await ctx.sync.pull(user, { cursor, limit: 3 });
      for (const change of page.changes as RecordState[]) {
        const previous = seen.get(change.recordId);
        // Each (record, version) is one committed change: seeing it twice, or going back, is a bug.
        if (previous && change.version <= previous.version) problems.push(`${change.recordId}: saw v${change.version} after v${previous.version}`);
        seen.set(change.recordId, { version: change.version, deleted: change.deleted });
      }
      total += page.changes.length;
      cursor = page.cursor;
      if (!page.hasMore) return total;
    }
  };
  let writing = true;
  const reader = (async () => {
    while (writing) if ((await drain()) === 0) await sleep(1);
  })();

  const serviceWriter = async (d: number) => {
    for (let round = 0; round < ROUNDS; round++) {
      const changes: Change[] = [put(`svc${d}-${round}`, 0)];
      if (round % 4 === 3) changes.push(del(`svc${d}-${round - 1}`, 1));
      const result = await ctx.sync.push(user, { changes });
      expect(result.conflicts).toEqual([]);
    }
  };
  const rawInserter = async (d: number) => {
    for (let round = 0; round < ROUNDS; round++) {
      await rawTransaction(ctx.db.pool, async (client) => {
        // Sometimes two rows in one statement, sometimes a pause inside the transaction.
        if (round % 3 === 0) {
          await client.query('insert into records (user_id, vault_id, record_id, ciphertext) values ($1, $2, $3, $4), ($1, $2, $5, $6)', [
            user, vaultId, `raw${d}-${round}a`, bytes(), `raw${d}-${round}b`, bytes(),
          ]);
        } else {
          await client.query('INSERT INTO records (user_id, vault_id, record_id, ciphertext) VALUES ($1, $2, $3, $4)', [user, vaultId, `raw${d}-${round}`, bytes()]);
          if (round % 3 === 1) await sleep(2);
        }
      });
    }
  };
  const rawUpdater = async (d: number) => {
    for (let round = 0; round < ROUNDS; round++) {
      await rawTransaction(ctx.db.pool, async (client) => {
        const id = rawShared[(d + round) % rawShared.length] as string;
        await client.query('UPDATE records SET ciphertext = $1 WHERE vault_id = $2 AND record_id = $3', [bytes(), vaultId, id]);
        if (round % 2 === 0) await sleep(2);
      });
    }
  };

  try {
    await Promise.all([
      ...Array.from({ length: SERVICE_WRITERS }, (_, d) => serviceWriter(d)),
      ...Array.from({ length: RAW_INSERTERS }, (_, d) => rawInserter(d)),
      ...Array.from({ length: RAW_UPDATERS }, (_, d) => rawUpdater(d)),
    ]);
  } finally {
    writing = false;
    await reader;
  }
  await drain();

  const { rows: stored } = await ctx.db.pool.query<{ record_id: string; version: number; deleted: boolean }>(
    'select record_id, version, deleted from records where vault_id = $1',
    [vaultId],
  );
  const expected = Object.fromEntries(stored.map((r) => [r.record_id, { version: r.version, deleted: r.deleted }]));
  // Sanity: every write happened (creates of both kinds, and the raw updates moved versions).
  const rawCreates = RAW_INSERTERS * ROUNDS + RAW_INSERTERS * Math.ceil(ROUNDS / 3);
  expect(Object.keys(expected)).toHaveLength(rawShared.length + SERVICE_WRITERS * ROUNDS + rawCreates);
  expect(rawShared.reduce((sum, id) => sum + ((expected[id] as Seen).version - 1), 0)).toBe(RAW_UPDATERS * ROUNDS);

  expect(problems).toEqual([]);
  expect(Object.fromEntries(seen)).toEqual(expected);
  // And the counters the quota relies on are exact after all of it.
  const { rows: head } = await ctx.db.pool.query<{ record_count: number; stored_bytes: string; last_seq: string }>(
    'select record_count, stored_bytes, last_seq from vaults where id = $1',
    [vaultId],
  );
  const { rows: actual } = await ctx.db.pool.query<{ n: number; b: string; s: string }>(
    `select count(*) filter (where not deleted)::int as n, sum(octet_length(ciphertext)) filter (where not deleted) as b, max(seq) as s from records where vault_id = $1`,
    [vaultId],
  );
  expect(head[0]).toEqual({ record_count: actual[0]?.n, stored_bytes: actual[0]?.b, last_seq: actual[0]?.s });
});
