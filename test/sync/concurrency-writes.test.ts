/**
 * No lost updates under real concurrency: many "devices" push at once over separate pooled
 * connections, on the same records. MikroORM 6's batched versioned UPDATE checks versions in a
 * SELECT and then updates without a version condition (see shared/STACK.md); only the vault lock
 * keeps that safe, and these tests fail if it does not.
 *
 * Counts are small on purpose (tens of pushes per device) so the file stays fast on 2 cores.
 */
import { expect, test } from 'vitest';
import { StaleKeyError, VersionConflictError } from '../../src/errors.js';
import { envelope } from '../support/fixtures.js';
import { bytes, del, newVault, put, setupSyncDatabase, storedRecords } from './support/sync.js';

// Every call reaches the database at once, as from several processes: the per-process
// per-vault gate (maxConcurrentCallsPerVault) would otherwise refuse most of them up front.
const ctx = setupSyncDatabase({ maxConcurrentCallsPerVault: 64 });

const DEVICES = 8;
const ROUNDS = 10;
const RECORDS = ['s0', 's1', 's2', 's3', 's4'];
/** A device gives up on a round after this many conflicts in a row: a livelock fails the test. */
const MAX_ATTEMPTS = 100;

interface Ack {
  device: number;
  version: number;
  ciphertext: Buffer;
}

test(`${DEVICES} devices doing ${ROUNDS} read-modify-push rounds each on ${RECORDS.length} shared records lose no update`, async () => {
  const user = await newVault(ctx.sync);
  const initial = RECORDS.map((id) => put(id, 0));
  await ctx.sync.push(user, { changes: initial });
  const acks = new Map<string, Ack[]>(initial.map((c) => [c.recordId, [{ device: -1, version: 1, ciphertext: c.ciphertext }]]));
  let requested = 0;

  async function device(d: number): Promise<void> {
    const known = new Map(RECORDS.map((id) => [id, 1]));
    // Odd devices push atomically: a conflict there rejects the whole push, a different path.
    const atomic = d % 2 === 1;
    for (let round = 0; round < ROUNDS; round++) {
      // 2 or 3 records per push, so every flush updates several rows at once (the racy ORM path).
      let targets = RECORDS.filter((_, i) => (i + d + round) % 5 < 2 + (round % 2));
      requested += targets.length;
      for (let attempt = 0; targets.length > 0; attempt++) {
        if (attempt >= MAX_ATTEMPTS) throw new Error(`device ${d} starved on round ${round}`);
        const changes = targets.map((id) => put(id, known.get(id) as number, bytes(24)));
        const result = await ctx.sync.push(user, { changes, atomic });
        for (const a of result.applied) {
          const sent = changes.find((c) => c.recordId === a.recordId) as (typeof changes)[number];
          acks.get(a.recordId)?.push({ device: d, version: a.version, ciphertext: sent.ciphertext });
          known.set(a.recordId, a.version);
        }
        for (const c of result.conflicts) {
          // Only concurrent updates can conflict here; merging = adopting the server's version.
          expect(c.reason).toBe('version_mismatch');
          known.set(c.recordId, c.server?.version as number);
        }
        const done = new Set(result.applied.map((a) => a.recordId));
        targets = targets.filter((id) => !done.has(id));
      }
    }
  }

  await Promise.all(Array.from({ length: DEVICES }, (_, d) => device(d)));

  const rows = await storedRecords(ctx.db.pool, user);
  expect([...rows.keys()]).toEqual(RECORDS);
  let totalUpdates = 0;
  for (const id of RECORDS) {
    const row = rows.get(id);
    const versions = (acks.get(id) ?? []).map((a) => a.version).sort((x, y) => x - y);
    // Every acknowledged version is unique, and together they are exactly 1..final.
    expect(versions).toEqual(Array.from({ length: row?.version ?? 0 }, (_, i) => i + 1));
    // The stored bytes are those of the write that was acknowledged last (highest version).
    const last = (acks.get(id) ?? []).find((a) => a.version === row?.version);
    expect(row?.ciphertext.equals(last?.ciphertext as Buffer)).toBe(true);
    totalUpdates += versions.length - 1;
  }
  // Every update a device asked for was applied exactly once.
  expect(totalUpdates).toBe(requested);

  // No duplicate rows for any record id, and no stray feed positions shared by two rows.
  const { rows: dupes } = await ctx.db.pool.query('select record_id from records where user_id = $1 group by record_id having count(*) > 1', [user]);
  expect(dupes).toEqual([]);
  const { rows: seqs } = await ctx.db.pool.query<{ n: string; d: string }>('select count(*) as n, count(distinct seq) as d from records where user_id = $1', [user]);
  expect(seqs[0]?.n).toBe(seqs[0]?.d);
});

test('concurrent creates of the same new record id: exactly one device gets version 1, every other gets "exists"', async () => {
  const user = await newVault(ctx.sync);
  const ids = ['new0', 'new1', 'new2', 'new3'];
  const attempts = ids.flatMap((id) => Array.from({ length: 6 }, (_, device) => ({ id, device, change: put(id, 0) })));
  // Every (device, id) pair is its own push, all in flight at once.
  const results = await Promise.all(attempts.map((a) => ctx.sync.push(user, { changes: [a.change] })));

  const rows = await storedRecords(ctx.db.pool, user);
  for (const id of ids) {
    const mine = attempts.map((a, i) => ({ ...a, result: results[i] })).filter((a) => a.id === id);
    const winners = mine.filter((a) => a.result?.applied.length === 1);
    expect(winners).toHaveLength(1);
    expect(winners[0]?.result?.applied).toEqual([{ recordId: id, version: 1 }]);
    const winnerBytes = winners[0]?.change.ciphertext as Buffer;
    for (const loser of mine.filter((a) => a !== winners[0])) {
      expect(loser.result?.conflicts).toMatchObject([{ recordId: id, reason: 'exists', server: { version: 1 } }]);
      // The loser sees the winner's bytes, to merge with.
      expect(loser.result?.conflicts[0]?.server?.ciphertext?.equals(winnerBytes)).toBe(true);
    }
    expect(rows.get(id)?.ciphertext.equals(winnerBytes)).toBe(true);
    expect(rows.get(id)?.version).toBe(1);
  }
  expect(rows.size).toBe(ids.length);
});

test('concurrent deletes and updates of one record from the same version: one write happens, everyone else is told the truth', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('x', 0)] });
  // Everybody races from version 1: half delete, half update.
  const changes = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? del('x', 1) : put('x', 1)));
  const results = await Promise.all(changes.map((c) => ctx.sync.push(user, { changes: [c] })));
  const outcomes = changes.map((c, i) => ({ isDelete: 'deleted' in c, change: c, result: results[i] }));

  // Exactly one write: the record is at version 2, never 3 or more.
  const row = (await storedRecords(ctx.db.pool, user)).get('x');
  expect(row?.version).toBe(2);
  if (row?.deleted) {
    // A delete won. The other deletes asked for the same outcome, so they count as applied at 2
    // (the idempotent-retry rule); every update is told the record is gone.
    expect(row.bytes).toBe(0);
    for (const o of outcomes) {
      if (o.isDelete) expect(o.result?.applied).toEqual([{ recordId: 'x', version: 2 }]);
      else expect(o.result?.conflicts).toMatchObject([{ reason: 'gone', server: { version: 2, deleted: true } }]);
    }
  } else {
    // An update won: its bytes are stored, and every other device is told of version 2.
    const winners = outcomes.filter((o) => o.result?.applied.length === 1);
    expect(winners).toHaveLength(1);
    expect(winners[0]?.isDelete).toBe(false);
    expect(row?.ciphertext.equals((winners[0]?.change as { ciphertext: Buffer }).ciphertext)).toBe(true);
    for (const o of outcomes.filter((x) => x !== winners[0])) {
      expect(o.result?.conflicts).toMatchObject([{ reason: 'version_mismatch', server: { version: 2, deleted: false } }]);
    }
  }
});

test('a key rotation racing a push on the same records: exactly one of them wins, never a mix of old and new key', async () => {
  // The pushing device encrypted under key version 1, and says so.
  for (let round = 0; round < 5; round++) {
    const user = await newVault(ctx.sync);
    await ctx.sync.push(user, { changes: RECORDS.map((id) => put(id, 0)) });
    const rotation = { expectedVersion: 1, ...envelope(), records: RECORDS.map((id) => ({ recordId: id, baseVersion: 1, ciphertext: bytes(24) })) };
    const update = [put('s0', 1), put('s3', 1)];
    const [rotated, pushed] = await Promise.allSettled([ctx.sync.rotateKey(user, rotation), ctx.sync.push(user, { changes: update, keyVersion: 1 })]);
    const rows = await storedRecords(ctx.db.pool, user);
    const pushWon = pushed.status === 'fulfilled' && pushed.value.applied.length === 2;
    if (rotated.status === 'fulfilled') {
      // The rotation went first: the push's ciphertext is under the replaced key, so none of it is written.
      expect(pushWon).toBe(false);
      expect(pushed.status === 'rejected' && pushed.reason).toBeInstanceOf(StaleKeyError);
      for (const r of rotation.records) expect(rows.get(r.recordId)?.ciphertext.equals(r.ciphertext)).toBe(true);
    } else {
      // The push went first: the rotation saw stale versions and changed nothing.
      expect(rotated.reason).toBeInstanceOf(VersionConflictError);
      expect(pushWon).toBe(true);
      expect(rows.get('s0')?.ciphertext.equals(update[0]?.ciphertext as Buffer)).toBe(true);
      expect((await ctx.sync.getVault(user))?.version).toBe(1);
    }
  }
});
