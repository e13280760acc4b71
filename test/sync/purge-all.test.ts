/**
 * `purgeTombstones()` over every vault (issue #12.3) goes vault by vault and reports what it did:
 * a vault locked longer than `lockTimeoutMs` is skipped with its reason and the run goes on; any
 * other failure stops the run with `PurgeIncompleteError`, which says what was purged before it;
 * and where row-level security would hide vaults, the call refuses to run instead of silently
 * purging nothing.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig } from '../../src/config.js';
import { ConfigurationError, PurgeIncompleteError } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { createAppRole, type AppRole } from '../support/app-role.js';
import { envelope } from '../support/fixtures.js';
import { del, put, rejectionOf, setupSyncDatabase, storedRecords, tableDigest } from './support/sync.js';

const ctx = setupSyncDatabase();
const FUTURE = () => new Date(Date.now() + 60_000);

/** A service logged in as the tables' owner (purging every vault needs it), with a short lock wait. */
let owner: MikroORM;
let purger: SyncService;
beforeAll(async () => {
  owner = await MikroORM.init(createConfig(ctx.db.url, { pool: { min: 0, max: 4 } }));
  purger = new SyncService(owner.em, { lockTimeoutMs: 300 });
});
afterAll(async () => {
  await owner?.close(true);
});

/** Vaults `<prefix>-0`, `<prefix>-1`, ... (sorted in that order), each with one tombstone and one live record. */
async function vaultsWithTombstones(prefix: string, n: number): Promise<string[]> {
  const users = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  for (const user of users) {
    await purger.enableVault(user, envelope());
    await purger.push(user, { changes: [put('live', 0), put('dead', 0)] });
    await purger.push(user, { changes: [del('dead', 1)] });
  }
  return users;
}

const hasTombstone = async (user: string) => (await storedRecords(ctx.db.pool, user)).has('dead');

test('purges vault by vault and reports the tombstones and vaults purged', async () => {
  const users = await vaultsWithTombstones(`all-${randomBytes(3).toString('hex')}`, 3);
  const report = await purger.purgeTombstones({ olderThan: FUTURE() });
  expect(report.skipped).toEqual([]);
  expect(report.vaults).toBeGreaterThanOrEqual(3);
  expect(report.purged).toBeGreaterThanOrEqual(3);
  for (const user of users) {
    expect(await hasTombstone(user)).toBe(false);
    expect((await storedRecords(ctx.db.pool, user)).has('live')).toBe(true);
  }
});

test('a vault locked longer than lockTimeoutMs is skipped with its reason; the run goes on, and a later run purges it', async () => {
  const [first, locked, last] = await vaultsWithTombstones(`lock-${randomBytes(3).toString('hex')}`, 3) as [string, string, string];
  const holder = new pg.Client(pgConnectionConfig(ctx.db.url));
  await holder.connect();
  try {
    await holder.query('begin');
    await holder.query('select 1 from vaults where user_id = $1 for update', [locked]);
    const report = await purger.purgeTombstones({ olderThan: FUTURE() });
    expect(report.skipped).toEqual([{ userId: locked, reason: expect.stringMatching(/lockTimeoutMs/) }]);
    expect(await hasTombstone(first)).toBe(false);
    expect(await hasTombstone(locked)).toBe(true);
    expect(await hasTombstone(last)).toBe(false);
  } finally {
    await holder.query('rollback').catch(() => {});
    await holder.end();
  }
  expect(await purger.purgeTombstones({ olderThan: FUTURE() })).toMatchObject({ skipped: [] });
  expect(await hasTombstone(locked)).toBe(false);
});

test('any other failure stops the run with PurgeIncompleteError saying what was done; earlier vaults stay purged, later ones untouched', async () => {
  const prefix = `fail-${randomBytes(3).toString('hex')}`;
  const [before, failing, after] = await vaultsWithTombstones(prefix, 3) as [string, string, string];
  // A test-only rule that refuses to delete the failing vault's rows: not a transient failure.
  await ctx.db.pool.query(`
    create function purge_test_refuse() returns trigger language plpgsql as $$
    begin
      if old.user_id = '${failing}' then raise exception 'purge refused for the test' using errcode = 'P0001'; end if;
      return old;
    end $$;
    create trigger purge_test_refuse before delete on records for each row execute function purge_test_refuse();`);
  try {
    const error = await rejectionOf(purger.purgeTombstones({ olderThan: FUTURE() }));
    expect(error).toBeInstanceOf(PurgeIncompleteError);
    const incomplete = error as PurgeIncompleteError;
    expect(incomplete).toMatchObject({ code: 'purge_incomplete', userId: failing });
    expect(incomplete.done.purged).toBeGreaterThanOrEqual(1);
    expect(incomplete.message).toMatch(new RegExp(`stopped at the vault of user "${failing}"`));
    expect(incomplete.message).toMatch(/tombstones were purged in \d+ vaults/);
    expect(await hasTombstone(before)).toBe(false);
    expect(await hasTombstone(failing)).toBe(true);
    expect(await hasTombstone(after)).toBe(true);
  } finally {
    await ctx.db.pool.query('drop trigger purge_test_refuse on records; drop function purge_test_refuse()');
  }
});

describe('under row-level security', () => {
  let role: AppRole;
  let app: MikroORM;
  beforeAll(async () => {
    role = await createAppRole(ctx.db);
    app = await MikroORM.init(createConfig(role.url, { pool: { min: 0, max: 2 } }));
  });
  afterAll(async () => {
    await app?.close(true);
    await role?.drop();
  });

  test('purging every vault as a non-owner role fails with ConfigurationError naming the owner and DIRECT_URL, and changes nothing', async () => {
    await vaultsWithTombstones(`rls-${randomBytes(3).toString('hex')}`, 1);
    const before = await tableDigest(ctx.db.pool);
    const error = await rejectionOf(new SyncService(app.em, { claimKey: role.claimKey }).purgeTombstones({ olderThan: FUTURE() }));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/owner/);
    expect((error as Error).message).toMatch(/DIRECT_URL/);
    expect(await tableDigest(ctx.db.pool)).toEqual(before);
  });

  test('purging one user still works as that role', async () => {
    const [user] = await vaultsWithTombstones(`rls-one-${randomBytes(3).toString('hex')}`, 1) as [string];
    expect(await new SyncService(app.em, { claimKey: role.claimKey }).purgeTombstones({ olderThan: FUTURE(), userId: user })).toEqual({ purged: 1, vaults: 1, skipped: [] });
  });
});
