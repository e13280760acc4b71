/**
 * Raw SQL writers are first-class (issue #9.2): another part of the epic, an admin script or a data
 * fix may write `records` with plain SQL, without knowing about feed positions, versions or the
 * vault's counters. The database gives them the same guarantees the service has: the ticket's
 * four-column INSERT works, every raw INSERT or UPDATE reaches every device through the feed,
 * versions never go back or get reused, and a raw DELETE (or TRUNCATE) makes devices resync
 * instead of silently missing it. The vault's counters stay exact whoever writes.
 */
import { describe, expect, test } from 'vitest';
import type pg from 'pg';
import { ResyncRequiredError } from '../../src/errors.js';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { actAs, createAppRole } from '../support/app-role.js';
import { createTestOrm } from '../support/database.js';
import { bytes, del, newVault, pullAll, put, rejectionOf, setupSyncDatabase, storedRecord, storedRecords, vaultDigest } from './support/sync.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { envelope } from '../support/fixtures.js';

const ctx = setupSyncDatabase();
const FUTURE = () => new Date(Date.now() + 60_000);

interface Counters {
  id: string;
  lastSeq: number;
  purgedSeq: number;
  versionFloor: number;
  recordCount: number;
  storedBytes: number;
}

async function counters(pool: Pick<pg.Pool, 'query'>, user: string): Promise<Counters> {
  const { rows } = await pool.query<{ id: string; last_seq: string; purged_seq: string; version_floor: number; record_count: number; stored_bytes: string }>(
    'select id, last_seq, purged_seq, version_floor, record_count, stored_bytes from vaults where user_id = $1',
    [user],
  );
  const r = rows[0];
  if (!r) throw new Error(`no vault for ${user}`);
  return { id: r.id, lastSeq: Number(r.last_seq), purgedSeq: Number(r.purged_seq), versionFloor: r.version_floor, recordCount: r.record_count, storedBytes: Number(r.stored_bytes) };
}

/** The counters recomputed from the rows: what the triggers must have kept. */
async function recount(pool: Pick<pg.Pool, 'query'>, user: string): Promise<{ recordCount: number; storedBytes: number; maxSeq: number }> {
  const { rows } = await pool.query<{ n: number; b: string; s: string | null }>(
    `select count(*) filter (where not deleted)::int as n, coalesce(sum(octet_length(ciphertext)) filter (where not deleted), 0) as b, max(seq) as s
     from records where user_id = $1`,
    [user],
  );
  const r = rows[0] as { n: number; b: string; s: string | null };
  return { recordCount: r.n, storedBytes: Number(r.b), maxSeq: Number(r.s ?? 0) };
}

/** Checks that the vault's counters equal what its rows say. */
async function expectCountersExact(user: string): Promise<void> {
  const c = await counters(ctx.db.pool, user);
  const actual = await recount(ctx.db.pool, user);
  expect({ recordCount: c.recordCount, storedBytes: c.storedBytes }).toEqual({ recordCount: actual.recordCount, storedBytes: actual.storedBytes });
  expect(c.lastSeq).toBeGreaterThanOrEqual(actual.maxSeq);
}

/** The ticket's own INSERT: four columns, nothing about seq or version. */
async function ticketInsert(pool: Pick<pg.Pool, 'query'>, user: string, recordId: string, ciphertext: Buffer = bytes()): Promise<{ seq: number; version: number }> {
  const vaultId = (await counters(ctx.db.pool, user)).id;
  const { rows } = await pool.query<{ seq: string; version: number }>(
    'INSERT INTO records (user_id, vault_id, record_id, ciphertext) VALUES ($1, $2, $3, $4) RETURNING seq, version',
    [user, vaultId, recordId, ciphertext],
  );
  return { seq: Number(rows[0]?.seq), version: rows[0]?.version as number };
}

describe('raw INSERT', () => {
  test('the ticket\'s four-column INSERT succeeds, takes the next feed position, and the next incremental pull returns it', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    const { cursor } = await pullAll(ctx.sync, user, null);
    const head = await counters(ctx.db.pool, user);
    const content = bytes(100);

    const inserted = await ticketInsert(ctx.db.pool, user, 'raw');
    expect(inserted).toEqual({ seq: head.lastSeq + 1, version: 1 });
    const pulled = await ctx.sync.pull(user, { cursor });
    expect(pulled.changes.map((c) => [c.recordId, c.version])).toEqual([['raw', 1]]);
    expect((await ctx.sync.pull(user, { cursor: pulled.cursor })).changes).toEqual([]);
    await expectCountersExact(user);

    // A device edits it like any record.
    const edited = await ctx.sync.push(user, { changes: [put('raw', 1, content)], cursor: pulled.cursor });
    expect(edited.applied).toEqual([{ recordId: 'raw', version: 2 }]);
  });

  test('in a vault whose records were purged, a raw INSERT starts above the version floor, whatever version it names', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('x', 0)] });
    await ctx.sync.push(user, { changes: [del('x', 1)] });
    await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user });
    expect((await counters(ctx.db.pool, user)).versionFloor).toBe(2);
    expect(await ticketInsert(ctx.db.pool, user, 'x')).toMatchObject({ version: 3 });
    const vaultId = (await counters(ctx.db.pool, user)).id;
    const { rows } = await ctx.db.pool.query<{ version: number }>(
      'insert into records (user_id, vault_id, record_id, ciphertext, version) values ($1, $2, $3, $4, 1) returning version',
      [user, vaultId, 'y', bytes()],
    );
    expect(rows[0]?.version).toBe(3);
  });

  test('an INSERT that sets seq itself but a version at or below the floor is refused by the database', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('x', 0)] });
    await ctx.sync.push(user, { changes: [del('x', 1)] });
    await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user });
    const head = await counters(ctx.db.pool, user);
    const attempt = ctx.db.pool.query('insert into records (user_id, vault_id, record_id, ciphertext, seq, version) values ($1, $2, $3, $4, $5, 2)', [
      user,
      head.id,
      'x',
      bytes(),
      head.lastSeq + 1,
    ]);
    await expect(attempt).rejects.toMatchObject({ code: '23514', constraint: 'records_version_above_floor' });
    expect(await counters(ctx.db.pool, user)).toEqual(head);
  });
});

describe('raw UPDATE', () => {
  test('an UPDATE of the content alone gets a new feed position and version + 1: the next pull returns it, and a stale device conflicts', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
    const { cursor } = await pullAll(ctx.sync, user, null);
    const content = bytes(70);
    await ctx.db.pool.query('UPDATE records SET ciphertext = $1 WHERE user_id = $2 AND record_id = $3', [content, user, 'a']);

    const pulled = await ctx.sync.pull(user, { cursor });
    expect(pulled.changes.map((c) => [c.recordId, c.version, c.ciphertext?.equals(content)])).toEqual([['a', 2, true]]);
    const stale = await ctx.sync.push(user, { changes: [put('a', 1)], cursor: pulled.cursor });
    expect(stale.conflicts).toMatchObject([{ recordId: 'a', reason: 'version_mismatch', server: { version: 2 } }]);
    await expectCountersExact(user);
  });

  test('an UPDATE that moves the version itself keeps it; one that lowers it, or renames the record, is refused', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0)] });
    await ctx.db.pool.query('update records set ciphertext = $1, version = version + 1 where user_id = $2', [bytes(), user]);
    expect((await storedRecord(ctx.db.pool, user, 'a')).version).toBe(2);
    await expect(ctx.db.pool.query('update records set version = 1 where user_id = $1', [user])).rejects.toMatchObject({
      code: '23514',
      constraint: 'records_version_never_decreases',
    });
    await expect(ctx.db.pool.query(`update records set record_id = 'renamed' where user_id = $1`, [user])).rejects.toMatchObject({
      code: '23514',
      constraint: 'records_record_id_immutable',
    });
    expect((await storedRecord(ctx.db.pool, user, 'a')).version).toBe(2);
  });

  test('a raw tombstone (deleted, ciphertext erased) reaches devices and drops the counters; an UPDATE of nothing the feed carries leaves the vault row alone', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0, bytes(10)), put('b', 0, bytes(20))] });
    const { cursor } = await pullAll(ctx.sync, user, null);
    await ctx.db.pool.query(`update records set deleted = true, ciphertext = ''::bytea where user_id = $1 and record_id = 'a'`, [user]);
    expect((await ctx.sync.pull(user, { cursor })).changes).toMatchObject([{ recordId: 'a', version: 2, deleted: true, ciphertext: null }]);
    expect(await counters(ctx.db.pool, user)).toMatchObject({ recordCount: 1, storedBytes: 20 });

    const vault = await vaultDigest(ctx.db.pool, user);
    await ctx.db.pool.query(`update records set updated_at = now() where user_id = $1`, [user]);
    expect(await vaultDigest(ctx.db.pool, user)).toBe(vault);
    await expectCountersExact(user);
  });
});

describe('raw DELETE and TRUNCATE are never silently missed', () => {
  test('a raw DELETE of a live record makes every device resync (pull and push), raises the version floor, and a full pull shows it gone', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('keep', 0), put('gone', 0)] });
    await ctx.sync.push(user, { changes: [put('gone', 1)] });
    const { cursor } = await pullAll(ctx.sync, user, null);
    const before = await counters(ctx.db.pool, user);

    await ctx.db.pool.query(`DELETE FROM records WHERE user_id = $1 AND record_id = 'gone'`, [user]);
    const after = await counters(ctx.db.pool, user);
    expect(after).toMatchObject({ lastSeq: before.lastSeq + 1, purgedSeq: before.lastSeq + 1, versionFloor: 2, recordCount: 1 });

    // Every device, even one that was fully up to date, must resync: it holds "gone" locally.
    expect(await rejectionOf(ctx.sync.pull(user, { cursor }))).toBeInstanceOf(ResyncRequiredError);
    expect(await rejectionOf(ctx.sync.push(user, { changes: [put('gone', 2)], cursor }))).toBeInstanceOf(ResyncRequiredError);
    const full = await pullAll(ctx.sync, user, null);
    expect(full.changes.map((c) => c.recordId)).toEqual(['keep']);
    // Re-created, it starts above the deleted versions.
    expect((await ctx.sync.push(user, { changes: [put('gone', 0)], cursor: full.cursor })).applied).toEqual([{ recordId: 'gone', version: 3 }]);
    await expectCountersExact(user);
  });

  test('a raw DELETE of a tombstone raises the purge horizon to its position only, like purgeTombstones', async () => {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('t', 0)] });
    const early = (await pullAll(ctx.sync, user, null)).cursor;
    await ctx.sync.push(user, { changes: [del('t', 1)] });
    const seen = (await pullAll(ctx.sync, user, early)).cursor;
    const tombstone = await storedRecord(ctx.db.pool, user, 't');

    await ctx.db.pool.query(`delete from records where user_id = $1 and deleted`, [user]);
    expect(await counters(ctx.db.pool, user)).toMatchObject({ purgedSeq: tombstone.seq, versionFloor: 2, recordCount: 1 });
    expect(await rejectionOf(ctx.sync.pull(user, { cursor: early }))).toBeInstanceOf(ResyncRequiredError);
    expect(await ctx.sync.pull(user, { cursor: seen })).toMatchObject({ changes: [], hasMore: false });
  });

  test('deleting the vault in SQL cascades to its records without touching any other vault', async () => {
    const user = await newVault(ctx.sync);
    const other = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
    await ctx.sync.push(other, { changes: [put('a', 0)] });
    const otherVault = await vaultDigest(ctx.db.pool, other);
    await ctx.db.pool.query('delete from vaults where user_id = $1', [user]);
    expect((await storedRecords(ctx.db.pool, user)).size).toBe(0);
    expect(await vaultDigest(ctx.db.pool, other)).toBe(otherVault);
  });

  test('TRUNCATE records raises every vault\'s version floor and makes every device resync', async () => {
    // A database of its own: TRUNCATE empties the table for every test.
    const db = await createTestOrm();
    try {
      const sync = new SyncService(db.orm.em);
      const users = ['t1', 't2'];
      const cursors: string[] = [];
      for (const user of users) {
        await sync.enableVault(user, envelope());
        await sync.push(user, { changes: [put('a', 0), put('b', 0)] });
        await sync.push(user, { changes: [put('a', 1), del('b', 1)] });
        cursors.push((await pullAll(sync, user, null)).cursor);
      }
      await db.pool.query('truncate records');
      for (const [i, user] of users.entries()) {
        expect(await counters(db.pool, user)).toMatchObject({ lastSeq: 5, purgedSeq: 5, versionFloor: 2, recordCount: 0, storedBytes: 0 });
        expect(await rejectionOf(sync.pull(user, { cursor: cursors[i] as string }))).toBeInstanceOf(ResyncRequiredError);
        const full = await pullAll(sync, user, null);
        expect(full.changes).toEqual([]);
        expect((await sync.push(user, { changes: [put('a', 0)], cursor: full.cursor })).applied).toEqual([{ recordId: 'a', version: 3 }]);
      }
    } finally {
      await db.close();
    }
  });
});

test('a non-owner role under row-level security writes raw SQL the same way, within its own vault only', async () => {
  const user = await newVault(ctx.sync);
  const stranger = await newVault(ctx.sync);
  const role = await createAppRole(ctx.db);
  const { default: pgModule } = await import('pg');
  const client = new pgModule.Client(pgConnectionConfig(role.url));
  client.on('error', () => {});
  await client.connect();
  try {
    const { cursor } = await pullAll(ctx.sync, user, null);
    const vaultId = (await counters(ctx.db.pool, user)).id;
    await client.query('begin');
    await actAs(client, user, role.claimKey);
    await client.query('insert into records (user_id, vault_id, record_id, ciphertext) values ($1, $2, $3, $4)', [user, vaultId, 'by-app', bytes()]);
    await client.query('commit');
    expect((await ctx.sync.pull(user, { cursor })).changes.map((c) => c.recordId)).toEqual(['by-app']);

    // Into another user's vault it can't even take a position: the vault row is not visible to it.
    const strangerVault = (await counters(ctx.db.pool, stranger)).id;
    const before = await vaultDigest(ctx.db.pool, stranger);
    await client.query('begin');
    await actAs(client, user, role.claimKey);
    await expect(client.query('insert into records (user_id, vault_id, record_id, ciphertext) values ($1, $2, $3, $4)', [user, strangerVault, 'x', bytes()])).rejects.toMatchObject({ code: '23503' });
    await client.query('rollback');
    expect(await vaultDigest(ctx.db.pool, stranger)).toBe(before);
  } finally {
    await client.end();
    await role.drop();
  }
});

test('the raw-writer row triggers never fire on the service\'s own writes (creates, updates, deletes, rotations, purges)', async () => {
  // Made to fail loudly for the length of this test: any push that fired them would fail.
  const tripwire = (name: string) => `create or replace function public.${name}() returns trigger language plpgsql
    set search_path = pg_catalog, pg_temp as $$ begin raise exception '${name} fired on the service path'; end $$`;
  const { rows } = await ctx.db.pool.query<{ name: string; definition: string }>(
    `select proname as name, pg_get_functiondef(oid) as definition from pg_proc where proname in ('vault_db_place_raw_insert', 'vault_db_place_raw_update')`,
  );
  expect(rows).toHaveLength(2);
  try {
    for (const row of rows) await ctx.db.pool.query(tripwire(row.name));
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0)] });
    await ctx.sync.push(user, { changes: [put('a', 1), del('b', 1), put('b2', 0)] });
    await ctx.sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: ['a', 'b2', 'c'].map((recordId) => ({ recordId, baseVersion: recordId === 'a' ? 2 : 1, ciphertext: bytes() })) });
    const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 2 });
    await ctx.sync.stageKeyRotation(user, { rotationId, records: ['a', 'b2', 'c'].map((recordId) => ({ recordId, baseVersion: recordId === 'a' ? 3 : 2, ciphertext: bytes() })) });
    await ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 2, ...envelope() });
    const { cursor } = await pullAll(ctx.sync, user, null);
    await ctx.sync.push(user, { changes: [put('c', 3), del('a', 4)], cursor, keyVersion: 3 });
    await ctx.sync.purgeTombstones({ olderThan: FUTURE(), userId: user });
    await expectCountersExact(user);
    // The tripwire itself works: a raw write does fire it.
    await expect(ctx.db.pool.query(`update records set ciphertext = $1 where user_id = $2 and record_id = 'c'`, [bytes(), user])).rejects.toThrow(/fired on the service path/);
  } finally {
    for (const row of rows) await ctx.db.pool.query(row.definition);
  }
});

test('after a raw DELETE of a live record, the full resync pages through the whole vault', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: Array.from({ length: 7 }, (_, i) => put(`r${i}`, 0)) });
  await ctx.db.pool.query(`delete from records where user_id = $1 and record_id = 'r3'`, [user]);
  // The purge horizon is now the head: above every page of the resync.
  const full = await pullAll(ctx.sync, user, null, { limit: 2 });
  expect(full.changes.map((c) => c.recordId)).toEqual(['r0', 'r1', 'r2', 'r4', 'r5', 'r6']);
  expect(await ctx.sync.pull(user, { cursor: full.cursor })).toMatchObject({ changes: [], hasMore: false });
});
