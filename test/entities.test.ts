/**
 * What the entity mappings promise through the ORM: orphan removal, optimistic locking on both
 * versioned entities, cascading deletes, and that no invalid or weak key envelope is ever flushed.
 * Every outcome is checked with raw SQL, not through the identity map that produced it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LockMode, OptimisticLockError, ref } from '@mikro-orm/core';
import { KeyRotation, StagedRecord, Vault, VaultRecord } from '../src/entities/index.js';
import { insertChosenVersions } from '../src/sync/initial-version.js';
import type { KdfParams } from '../src/envelope.js';
import { ValidationError } from '../src/errors.js';
import { createTestOrm, type TestOrm } from './support/database.js';
import { ciphertext, envelope } from './support/fixtures.js';
import { rejectionOf } from './support/rejection.js';

let db: TestOrm;
beforeAll(async () => { db = await createTestOrm(); });
afterAll(async () => { await db?.close(); });

const newUser = () => `user_${randomUUID()}`;

/** A flushed vault with `count` live records (seq 1..count), created in its own fork. */
async function seedVault(count = 0): Promise<{ vault: Vault; records: VaultRecord[] }> {
  const em = db.orm.em.fork();
  const vault = new Vault(newUser(), envelope());
  const records = Array.from({ length: count }, (_, i) => new VaultRecord(ref(vault), vault.userId, `r${i + 1}`, ciphertext(), i + 1));
  em.persist([vault, ...records]);
  await em.flush();
  return { vault, records };
}

async function recordRowIds(vaultId: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ id: string }>('select id from records where vault_id = $1 order by seq', [vaultId]);
  return rows.map((r) => r.id);
}

async function vaultRow(id: string): Promise<{ version: number; kdf_params: KdfParams; device_fingerprint: string | null } | undefined> {
  const { rows } = await db.pool.query<{ version: number; kdf_params: KdfParams; device_fingerprint: string | null }>(
    'select version, kdf_params, device_fingerprint from vaults where id = $1',
    [id],
  );
  return rows[0];
}

test('removing a record from a loaded vault.records deletes its row (orphan removal)', async () => {
  const { vault, records } = await seedVault(2);
  const em = db.orm.em.fork();
  const loaded = await em.findOneOrFail(Vault, vault.id, { populate: ['records'] });
  const victim = loaded.records.getItems().find((r) => r.id === records[0]!.id)!;

  loaded.records.remove(victim);
  await em.flush();

  expect(await recordRowIds(vault.id)).toEqual([records[1]!.id]);
  // A live record vanished without a tombstone: no device could learn of it from the feed, so the
  // database makes every device resync (purged_seq moves to a new head) and keeps its version.
  const { rows } = await db.pool.query<{ last_seq: string; purged_seq: string; version_floor: number; record_count: number }>(
    'select last_seq, purged_seq, version_floor, record_count from vaults where id = $1',
    [vault.id],
  );
  expect(rows[0]).toEqual({ last_seq: '3', purged_seq: '3', version_floor: 1, record_count: 1 });
});

describe('a new record\'s first version', () => {
  test('MikroORM 6 leaves an explicit version out of the INSERT, and the database refuses the result at or below the floor', async () => {
    const { vault } = await seedVault(1);
    await db.pool.query('delete from records where vault_id = $1', [vault.id]);
    const em = db.orm.em.fork();
    const record = new VaultRecord(ref(Vault, vault.id), vault.userId, 'again', ciphertext(), 10, 5);
    em.persist(record);
    // Inserted at the column default (1), which the floor (1, from the deleted row) refuses.
    await expect(em.flush()).rejects.toMatchObject({ code: '23514' });
    expect(await recordRowIds(vault.id)).toEqual([]);
  });

  test('with the sync service\'s flush listener, the chosen version is the one written', async () => {
    const { vault } = await seedVault(1);
    await db.pool.query('delete from records where vault_id = $1', [vault.id]);
    const em = db.orm.em.fork();
    em.getEventManager().registerSubscriber(insertChosenVersions);
    const records = [5, 5].map((version, i) => new VaultRecord(ref(Vault, vault.id), vault.userId, `again-${i}`, ciphertext(), 10 + i, version));
    em.persist(records);
    await em.flush();
    const { rows } = await db.pool.query<{ version: number }>('select version from records where vault_id = $1 order by seq', [vault.id]);
    expect(rows).toEqual([{ version: 5 }, { version: 5 }]);
    expect(records.map((r) => r.version)).toEqual([5, 5]);
  });
});

test('staged rotations are entities: a rotation and its staged records go with their vault', async () => {
  const { vault } = await seedVault(1);
  const em = db.orm.em.fork();
  const rotation = new KeyRotation(ref(Vault, vault.id), vault.userId);
  em.persist([rotation, new StagedRecord(ref(rotation), vault.userId, 'r1', 1, ciphertext())]);
  await em.flush();
  const count = async () => (await db.pool.query<{ n: number }>('select (select count(*) from key_rotations where vault_id = $1)::int + (select count(*) from staged_records where rotation_id = $2)::int as n', [vault.id, rotation.id])).rows[0]!.n;
  expect(await count()).toBe(2);
  await db.pool.query('delete from vaults where id = $1', [vault.id]);
  expect(await count()).toBe(0);
});

describe('optimistic locking', () => {
  test('Vault: of two forks updating the same row, the second flush throws OptimisticLockError', async () => {
    const { vault } = await seedVault();
    const first = db.orm.em.fork();
    const second = db.orm.em.fork();
    const a = await first.findOneOrFail(Vault, vault.id);
    const b = await second.findOneOrFail(Vault, vault.id);

    a.deviceFingerprint = 'phone';
    await first.flush();
    b.deviceFingerprint = 'laptop';
    await expect(second.flush()).rejects.toBeInstanceOf(OptimisticLockError);

    // The first write survived; the stale one was not applied.
    expect(await vaultRow(vault.id)).toMatchObject({ version: 2, device_fingerprint: 'phone' });
  });

  test('Vault: em.lock with a stale expected version throws OptimisticLockError', async () => {
    const { vault } = await seedVault();
    const em = db.orm.em.fork();
    const loaded = await em.findOneOrFail(Vault, vault.id);
    loaded.deviceFingerprint = 'tablet';
    await em.flush();
    expect(loaded.version).toBe(2);

    // The caller read version 1 earlier (say, a client's baseVersion): the entity is at 2 now.
    await expect(em.lock(loaded, LockMode.OPTIMISTIC, 1)).rejects.toBeInstanceOf(OptimisticLockError);
    await expect(em.lock(loaded, LockMode.OPTIMISTIC, 2)).resolves.toBeUndefined();
  });

  test('VaultRecord: of two forks changing the same ciphertext, the second flush throws OptimisticLockError', async () => {
    const { records } = await seedVault(1);
    const id = records[0]!.id;
    const first = db.orm.em.fork();
    const second = db.orm.em.fork();
    const a = await first.findOneOrFail(VaultRecord, id);
    const b = await second.findOneOrFail(VaultRecord, id);
    const winner = ciphertext();

    a.ciphertext = winner;
    await first.flush();
    b.ciphertext = ciphertext();
    await expect(second.flush()).rejects.toBeInstanceOf(OptimisticLockError);

    const { rows } = await db.pool.query<{ version: number; ciphertext: Buffer }>(
      'select version, ciphertext from records where id = $1',
      [id],
    );
    expect(rows[0]?.version).toBe(2);
    expect(rows[0]?.ciphertext.equals(winner)).toBe(true);
  });
});

describe("VaultRecord's scalars are left out of auto flush's change tracking (trackChanges: false)", () => {
  test('a query flushes a changed Vault first, but not a changed record; an explicit flush writes the record', async () => {
    const { vault, records } = await seedVault(1);
    const original = records[0]!.ciphertext;
    const em = db.orm.em.fork();
    const loadedVault = await em.findOneOrFail(Vault, vault.id);
    const record = await em.findOneOrFail(VaultRecord, records[0]!.id);

    // The control: Vault's scalars are tracked, so the default (auto) flush mode writes before a query.
    loadedVault.deviceFingerprint = 'auto-flushed';
    await em.find(Vault, { id: vault.id });
    expect((await vaultRow(vault.id))?.device_fingerprint).toBe('auto-flushed');

    const changed = ciphertext();
    record.ciphertext = changed;
    await em.find(VaultRecord, { id: record.id });
    const stored = async () => (await db.pool.query<{ version: number; ciphertext: Buffer }>('select version, ciphertext from records where id = $1', [record.id])).rows[0];
    expect((await stored())?.ciphertext.equals(original)).toBe(true);

    await em.flush();
    expect((await stored())?.ciphertext.equals(changed)).toBe(true);
    expect((await stored())?.version).toBe(2);
  });
});

describe('deleting a vault through the ORM', () => {
  test('removes its records even when they were never loaded', async () => {
    // The collection is not initialized, so only the database's ON DELETE CASCADE can do this.
    const { vault } = await seedVault(3);
    const em = db.orm.em.fork();
    em.remove(await em.findOneOrFail(Vault, vault.id));
    await em.flush();

    expect(await vaultRow(vault.id)).toBeUndefined();
    expect(await recordRowIds(vault.id)).toEqual([]);
  });

  test('removes its records when they were loaded', async () => {
    const { vault } = await seedVault(3);
    const other = await seedVault(1);
    const em = db.orm.em.fork();
    em.remove(await em.findOneOrFail(Vault, vault.id, { populate: ['records'] }));
    await em.flush();

    expect(await vaultRow(vault.id)).toBeUndefined();
    expect(await recordRowIds(vault.id)).toEqual([]);
    expect(await recordRowIds(other.vault.id)).toHaveLength(1);
  });
});

describe('the key envelope is validated before anything is written', () => {
  const weak: KdfParams = { algorithm: 'PBKDF2-SHA256', iterations: 1_000, saltLength: 16 };

  test('new Vault with a bad envelope throws ValidationError, and its transaction writes nothing', async () => {
    const userId = newUser();
    const bystander = new Vault(`${userId}_ok`, envelope());
    const attempt = db.orm.em.fork().transactional(async (em) => {
      em.persist(bystander);
      em.persist(new Vault(userId, { ...envelope(), salt: new Uint8Array(8) }));
    });

    await expect(attempt).rejects.toBeInstanceOf(ValidationError);
    const { rows } = await db.pool.query('select 1 from vaults where user_id in ($1, $2)', [userId, bystander.userId]);
    expect(rows).toEqual([]);
  });

  test('a weak kdfParams set directly on a new vault fails the flush (@BeforeCreate)', async () => {
    const em = db.orm.em.fork();
    const vault = new Vault(newUser(), envelope());
    vault.kdfParams = weak;
    await expect(em.persistAndFlush(vault)).rejects.toBeInstanceOf(ValidationError);
    expect(await vaultRow(vault.id)).toBeUndefined();
  });

  test('a weak kdfParams set directly on a stored vault fails the flush (@BeforeUpdate) and the row is unchanged', async () => {
    const { vault } = await seedVault();
    const before = await vaultRow(vault.id);
    const em = db.orm.em.fork();
    const loaded = await em.findOneOrFail(Vault, vault.id);

    loaded.kdfParams = weak;
    const error = await rejectionOf(em.flush());

    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).message).toContain('kdfParams.iterations');
    expect(await vaultRow(vault.id)).toEqual(before);
  });

  test('an in-place edit of kdfParams is caught too', async () => {
    // kdfParams is a JSON property: MikroORM diffs it by value, so mutation counts as a change.
    const { vault } = await seedVault();
    const before = await vaultRow(vault.id);
    const em = db.orm.em.fork();
    const loaded = await em.findOneOrFail(Vault, vault.id);

    (loaded.kdfParams as { iterations: number }).iterations = 10;
    await expect(em.flush()).rejects.toBeInstanceOf(ValidationError);
    expect(await vaultRow(vault.id)).toEqual(before);
  });
});
