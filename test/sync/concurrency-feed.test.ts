/**
 * The feed is gap-free under concurrency: while devices push at once, a reader that keeps pulling
 * from its last cursor ends up with exactly the database's state, and never sees a record go
 * back in time. Writers adopt the cursors their pushes return, and must end up complete too:
 * adopting a push cursor must never skip another device's change.
 *
 * Every write creates a record nobody touches again, so a skipped change can't be papered over
 * by a later one: it would be missing from the reader's final view.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, test } from 'vitest';
import type { Change, RecordState } from '../../src/sync/types.js';
import { del, newVault, put, setupSyncDatabase } from './support/sync.js';

// Every call reaches the database at once, as from several processes: the per-process
// per-vault gate (maxConcurrentCallsPerVault) would otherwise refuse most of them up front.
const ctx = setupSyncDatabase({ maxConcurrentCallsPerVault: 64 });

const WRITERS = 6;
const ROUNDS = 10;
const SHARED = ['shared0', 'shared1', 'shared2'];

interface Seen {
  version: number;
  deleted: boolean;
}

/** A device's picture of the vault, fed by pulls (and its own pushes), that checks it never goes back. */
class View {
  readonly records = new Map<string, Seen>();
  readonly backwards: string[] = [];
  cursor: string | null = null;

  /** `strict`: a reader must see each version once; a writer may get its own change back once. */
  see(change: Pick<RecordState, 'recordId' | 'version' | 'deleted'>, strict: boolean): void {
    const previous = this.records.get(change.recordId);
    if (previous && (strict ? change.version <= previous.version : change.version < previous.version)) {
      this.backwards.push(`${change.recordId}: saw ${change.version} after ${previous.version}`);
    }
    if (!previous || change.version >= previous.version) this.records.set(change.recordId, { version: change.version, deleted: change.deleted });
  }

  /** Pulls pages of `limit` until the feed says there is no more. */
  async drain(user: string, limit: number, strict: boolean): Promise<number[]> {
    const sizes: number[] = [];
    for (;;) {
      const page = await ctx.sync.pull(user, { cursor: this.cursor, limit });
      for (const change of page.changes) this.see(change, strict);
      this.cursor = page.cursor;
      sizes.push(page.changes.length);
      if (!page.hasMore) return sizes;
    }
  }
}

async function databaseState(user: string): Promise<Record<string, Seen>> {
  const { rows } = await ctx.db.pool.query<{ record_id: string; version: number; deleted: boolean }>(
    'select record_id, version, deleted from records where user_id = $1',
    [user],
  );
  return Object.fromEntries(rows.map((r) => [r.record_id, { version: r.version, deleted: r.deleted }]));
}

test(`a reader pulling while ${WRITERS} devices push concurrently ends with exactly the database's state, and so does every device`, async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: SHARED.map((id) => put(id, 0)) });

  let writing = true;
  const reader = new View();
  const readerLoop = (async () => {
    while (writing) {
      // Small pages, so the reader is often in the middle of the feed when commits land.
      const sizes = await reader.drain(user, 3, true);
      if (sizes.every((n) => n === 0)) await sleep(1);
    }
  })();

  const writers = Array.from({ length: WRITERS }, () => new View());
  async function writer(d: number): Promise<void> {
    const view = writers[d] as View;
    const known = new Map(SHARED.map((id) => [id, 1]));
    for (let round = 0; round < ROUNDS; round++) {
      const shared = SHARED[(d + round) % SHARED.length] as string;
      const changes: Change[] = [put(`w${d}-${round}`, 0), put(shared, known.get(shared) as number)];
      // Every third round also deletes this device's record of the round before.
      if (round % 3 === 2) changes.push(del(`w${d}-${round - 1}`, 1));
      const result = await ctx.sync.push(user, { changes, cursor: view.cursor });
      for (const a of result.applied) {
        const change = changes.find((c) => c.recordId === a.recordId);
        view.see({ recordId: a.recordId, version: a.version, deleted: change?.deleted === true }, false);
        if (known.has(a.recordId)) known.set(a.recordId, a.version);
      }
      for (const c of result.conflicts) {
        expect(c.recordId).toBe(shared);
        known.set(c.recordId, c.server?.version as number);
      }
      view.cursor = result.cursor;
      // Pull only now and then, so pushes go out with both fresh and stale cursors.
      if (round % 2 === 1) await view.drain(user, 4, false);
    }
  }

  try {
    await Promise.all(Array.from({ length: WRITERS }, (_, d) => writer(d)));
  } finally {
    writing = false;
    await readerLoop;
  }

  const expected = await databaseState(user);
  // Sanity: every created record is there (some as tombstones), plus the shared ones.
  expect(Object.keys(expected)).toHaveLength(SHARED.length + WRITERS * ROUNDS);

  await reader.drain(user, 3, true);
  expect(reader.backwards).toEqual([]);
  expect(Object.fromEntries(reader.records)).toEqual(expected);

  for (const [d, view] of writers.entries()) {
    await view.drain(user, 50, false);
    expect(view.backwards, `writer ${d}`).toEqual([]);
    expect(Object.fromEntries(view.records), `writer ${d}`).toEqual(expected);
  }
});
