/**
 * The sync service run the way production runs it: its ORM logs in as the non-owner application
 * role and signs each transaction's identity claim with the key it was given, so every row it
 * reads or writes passes the row-level security policies. Every public method works end to end,
 * and a second user's data stays out of reach. Without the key, or with a wrong one, every call
 * fails with ConfigurationError and writes nothing.
 */
import { randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/postgresql';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConfig } from '../../src/config.js';
import { Vault } from '../../src/entities/vault.js';
import { ConfigurationError, ResyncRequiredError, VaultAlreadyEnabledError, VaultNotFoundError, VersionConflictError } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { createAppRole, type AppRole } from '../support/app-role.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';
import { argon2id, ciphertext, envelope, pbkdf2 } from '../support/fixtures.js';

const A = `alice_${randomBytes(4).toString('hex')}`;
const B = `bob_${randomBytes(4).toString('hex')}`;

let db: TestDatabase;
let role: AppRole;
let orm: MikroORM;
let owner: pg.Pool;
let sync: SyncService;

const ownerCount = async (table: string, userId: string, extra = 'true'): Promise<number> =>
  Number((await owner.query<{ n: string }>(`select count(*) as n from ${table} where user_id = $1 and ${extra}`, [userId])).rows[0]?.n);

beforeAll(async () => {
  db = await createTestDatabase();
  role = await createAppRole(db);
  orm = await MikroORM.init(createConfig(role.url, { pool: { min: 0, max: 4 } }));
  owner = testPool(db.url, 2);
  sync = new SyncService(orm.em, { lockTimeoutMs: 10_000, claimKey: role.claimKey });
});

afterAll(async () => {
  await orm?.close(true);
  await owner?.end();
  await role?.drop();
  await db?.drop();
});

describe('SyncService connected as the application role', () => {
  it('really is connected as that role, and outside a service call the ORM sees nothing', async () => {
    const rows = await orm.em.fork().getConnection().execute<{ current_user: string; bypass: boolean }[]>(
      'select current_user, (select rolbypassrls or rolsuper from pg_roles where rolname = current_user) as bypass',
    );
    expect(rows).toEqual([{ current_user: role.name, bypass: false }]);
  });

  it('enables vaults, and refuses a second one', async () => {
    const a = await sync.enableVault(A, { ...envelope(pbkdf2), deviceFingerprint: 'laptop' });
    expect(a).toMatchObject({ userId: A, version: 1, deviceFingerprint: 'laptop', kdfParams: pbkdf2 });
    await sync.enableVault(B, envelope(argon2id));
    await expect(sync.enableVault(A, envelope())).rejects.toBeInstanceOf(VaultAlreadyEnabledError);
    expect(await ownerCount('vaults', A)).toBe(1);
    expect(await ownerCount('vaults', B)).toBe(1);
    // The ORM, outside the service's transactions, still sees no vault.
    expect(await orm.em.fork().count(Vault, {})).toBe(0);
  });

  it('reads the vault back, and null for a user without one', async () => {
    expect((await sync.getVault(A))?.userId).toBe(A);
    expect((await sync.getVault(B))?.kdfParams).toEqual(argon2id);
    expect(await sync.getVault(`nobody_${randomBytes(3).toString('hex')}`)).toBeNull();
  });

  let cursorA = '';
  let earlyA = '';
  const bodies = new Map<string, Buffer>();

  it('pushes, pulls, resolves conflicts and deletes', async () => {
    for (const id of ['a1', 'a2', 'a3']) bodies.set(id, ciphertext(48));
    const first = await sync.push(A, { changes: [...bodies].map(([recordId, c]) => ({ recordId, baseVersion: 0, ciphertext: c })) });
    expect(first.conflicts).toEqual([]);
    expect(first.applied).toEqual([{ recordId: 'a1', version: 1 }, { recordId: 'a2', version: 1 }, { recordId: 'a3', version: 1 }]);
    await sync.push(B, { changes: [{ recordId: 'a1', baseVersion: 0, ciphertext: ciphertext() }, { recordId: 'b2', baseVersion: 0, ciphertext: ciphertext() }] });
    expect(await ownerCount('records', A)).toBe(3);
    expect(await ownerCount('records', B)).toBe(2);

    // A re-sent push applies nothing twice.
    const again = await sync.push(A, { changes: [{ recordId: 'a1', baseVersion: 0, ciphertext: bodies.get('a1') as Buffer }] });
    expect(again).toMatchObject({ applied: [{ recordId: 'a1', version: 1 }], conflicts: [] });

    const pulled = await sync.pull(A, {});
    expect(pulled.hasMore).toBe(false);
    expect(pulled.changes.map((c) => [c.recordId, c.version, c.ciphertext])).toEqual([...bodies].map(([id, c]) => [id, 1, c]));
    cursorA = pulled.cursor;
    earlyA = pulled.cursor;

    // An update, then a stale update from another device: a conflict carrying the server state.
    const edited = ciphertext(40);
    const upd = await sync.push(A, { changes: [{ recordId: 'a2', baseVersion: 1, ciphertext: edited }], cursor: cursorA });
    expect(upd.applied).toEqual([{ recordId: 'a2', version: 2 }]);
    const stale = await sync.push(A, { changes: [{ recordId: 'a2', baseVersion: 1, ciphertext: ciphertext() }, { recordId: 'a3', baseVersion: 0, ciphertext: ciphertext() }] });
    expect(stale.applied).toEqual([]);
    expect(stale.conflicts.map((c) => [c.recordId, c.reason, c.server?.version, c.server?.ciphertext])).toEqual([
      ['a2', 'version_mismatch', 2, edited],
      ['a3', 'exists', 1, bodies.get('a3')],
    ]);
    bodies.set('a2', edited);

    // Atomic: one conflict, nothing applied.
    const atomic = await sync.push(A, { atomic: true, changes: [{ recordId: 'a4', baseVersion: 0, ciphertext: ciphertext() }, { recordId: 'a1', baseVersion: 7, ciphertext: ciphertext() }] });
    expect(atomic.applied).toEqual([]);
    expect(atomic.conflicts).toHaveLength(1);
    expect(await ownerCount('records', A, "record_id = 'a4'")).toBe(0);

    // A delete leaves a tombstone, which the feed serves.
    const del = await sync.push(A, { changes: [{ recordId: 'a3', baseVersion: 1, deleted: true }], cursor: upd.cursor });
    expect(del.applied).toEqual([{ recordId: 'a3', version: 2 }]);
    bodies.delete('a3');
    const next = await sync.pull(A, { cursor: cursorA });
    expect(next.changes.map((c) => [c.recordId, c.version, c.deleted])).toEqual([['a2', 2, false], ['a3', 2, true]]);
    cursorA = next.cursor;

    // B's pull holds only B's records, with B's own 'a1'.
    const bPull = await sync.pull(B, {});
    expect(bPull.changes.map((c) => c.recordId).sort()).toEqual(['a1', 'b2']);
    expect(bPull.changes.find((c) => c.recordId === 'a1')?.ciphertext).not.toEqual(bodies.get('a1'));
  });

  it("refuses another user's cursor", async () => {
    const bCursor = (await sync.pull(B, {})).cursor;
    await expect(sync.pull(A, { cursor: bCursor })).rejects.toBeInstanceOf(ResyncRequiredError);
    await expect(sync.push(A, { changes: [], cursor: bCursor })).rejects.toBeInstanceOf(ResyncRequiredError);
    await expect(sync.pull(B, { cursor: cursorA })).rejects.toBeInstanceOf(ResyncRequiredError);
  });

  it('rewraps the key, and refuses a stale rewrap', async () => {
    const next = envelope(argon2id);
    const info = await sync.rewrapKey(A, { expectedVersion: 1, ...next });
    expect(info).toMatchObject({ version: 2, kdfParams: argon2id, wrappedKey: next.wrappedKey, salt: next.salt });
    await expect(sync.rewrapKey(A, { expectedVersion: 1, ...envelope() })).rejects.toBeInstanceOf(VersionConflictError);
    expect((await sync.getVault(A))?.version).toBe(2);
  });

  it('rotates the key over exactly the live records, and refuses a partial rotation', async () => {
    const live = (await sync.pull(A, {})).changes.filter((c) => !c.deleted);
    expect(live.map((c) => c.recordId)).toEqual(['a1', 'a2']);
    const partial = { expectedVersion: 2, ...envelope(), records: [{ recordId: 'a1', baseVersion: 1, ciphertext: ciphertext() }] };
    await expect(sync.rotateKey(A, partial)).rejects.toBeInstanceOf(VersionConflictError);

    const reencrypted = live.map((c) => ({ recordId: c.recordId, baseVersion: c.version, ciphertext: ciphertext(50) }));
    const info = await sync.rotateKey(A, { expectedVersion: 2, ...envelope(), records: reencrypted });
    expect(info.version).toBe(3);
    const after = await sync.pull(A, { cursor: cursorA });
    expect(after.changes.map((c) => [c.recordId, c.ciphertext])).toEqual(reencrypted.map((r) => [r.recordId, r.ciphertext]));
    cursorA = after.cursor;
    // B's vault and records did not move.
    expect((await sync.getVault(B))?.version).toBe(1);
  });

  it('purges tombstones of one user by userId', async () => {
    await sync.push(B, { changes: [{ recordId: 'b2', baseVersion: 1, deleted: true }] });
    expect(await ownerCount('records', A, 'deleted')).toBe(1);
    expect(await ownerCount('records', B, 'deleted')).toBe(1);
    const future = new Date(Date.now() + 60_000);
    expect(await sync.purgeTombstones({ olderThan: future, userId: A })).toEqual({ purged: 1, vaults: 1, skipped: [] });
    expect(await ownerCount('records', A, 'deleted')).toBe(0);
    expect(await ownerCount('records', B, 'deleted')).toBe(1);
    // A device that had not seen the purged delete must resync; one that had continues.
    await expect(sync.pull(A, { cursor: earlyA })).rejects.toBeInstanceOf(ResyncRequiredError);
    await expect(sync.pull(A, { cursor: cursorA })).resolves.toMatchObject({ changes: [], hasMore: false });
  });

  it('refuses to purge every vault under row-level security, naming the owner and DIRECT_URL (purge-all runs as the owner)', async () => {
    const before = await owner.query<{ t: string }>('select t::text as t from records t order by 1');
    const future = new Date(Date.now() + 60_000);
    // The app role would see no vault and report "nothing to purge": it must fail loudly instead.
    const refused = await sync.purgeTombstones({ olderThan: future }).then(() => null, (e: unknown) => e);
    expect(refused).toBeInstanceOf(ConfigurationError);
    expect((refused as Error).message).toMatch(/owner/);
    expect((refused as Error).message).toMatch(/DIRECT_URL/);
    expect((await owner.query<{ t: string }>('select t::text as t from records t order by 1')).rows).toEqual(before.rows);
    expect(await ownerCount('records', B, 'deleted')).toBe(1);

    // The same call through an ORM that logs in as the owner does purge every vault.
    const ownerOrm = await MikroORM.init(createConfig(db.url, { pool: { min: 0, max: 2 } }));
    try {
      expect(await new SyncService(ownerOrm.em).purgeTombstones({ olderThan: future })).toMatchObject({ purged: 1, skipped: [] });
    } finally {
      await ownerOrm.close(true);
    }
    expect(await ownerCount('records', B, 'deleted')).toBe(0);
  });

  it('disables a vault with its records, leaving the other user alone', async () => {
    const bRecords = await owner.query<{ t: string }>('select t::text as t from records t where user_id = $1 order by 1', [B]);
    expect(await sync.disableVault(A)).toEqual({ deletedRecords: 2 });
    expect(await ownerCount('vaults', A)).toBe(0);
    expect(await ownerCount('records', A)).toBe(0);
    expect(await sync.getVault(A)).toBeNull();
    await expect(sync.disableVault(A)).rejects.toBeInstanceOf(VaultNotFoundError);
    await expect(sync.pull(A, {})).rejects.toBeInstanceOf(VaultNotFoundError);
    await expect(sync.push(A, { changes: [] })).rejects.toBeInstanceOf(VaultNotFoundError);
    expect((await owner.query<{ t: string }>('select t::text as t from records t where user_id = $1 order by 1', [B])).rows).toEqual(bRecords.rows);
    // A can start over with a new vault; old cursors can't be continued.
    await sync.enableVault(A, envelope());
    await expect(sync.pull(A, { cursor: cursorA })).rejects.toBeInstanceOf(ResyncRequiredError);
    expect((await sync.pull(A, {})).changes).toEqual([]);
  });
});
