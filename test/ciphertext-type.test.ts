/**
 * VaultRecord.ciphertext's CiphertextType (issue 10, lever 3): no copy of the bytes into the
 * snapshot, and the same change detection as MikroORM's BlobType: an equal buffer is no change,
 * different bytes are one. Checked in the database with raw SQL.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ref, wrap } from '@mikro-orm/core';
import { Vault, VaultRecord } from '../src/entities/index.js';
import { createTestOrm, type TestOrm } from './support/database.js';
import { ciphertext, envelope } from './support/fixtures.js';

let db: TestOrm;
beforeAll(async () => { db = await createTestOrm(); });
afterAll(async () => { await db?.close(); });

async function seedRecord(): Promise<string> {
  const em = db.orm.em.fork();
  const vault = new Vault(`user_${randomUUID()}`, envelope());
  const record = new VaultRecord(ref(vault), vault.userId, 'r1', ciphertext(), 1);
  em.persist([vault, record]);
  await em.flush();
  return record.id;
}

async function stored(id: string): Promise<{ version: number; ciphertext: Buffer }> {
  const { rows } = await db.pool.query<{ version: number; ciphertext: Buffer }>('select version, ciphertext from records where id = $1', [id]);
  return rows[0] as { version: number; ciphertext: Buffer };
}

test('a loaded record shares its ciphertext with its snapshot: no copy of the bytes', async () => {
  const em = db.orm.em.fork();
  const record = await em.findOneOrFail(VaultRecord, await seedRecord());
  const snapshot = wrap(record, true).__originalEntityData as { ciphertext?: unknown };
  expect(Buffer.isBuffer(record.ciphertext)).toBe(true);
  expect(snapshot.ciphertext).toBe(record.ciphertext);
});

test('assigning an equal copy of the bytes is no change: the flush writes nothing', async () => {
  const id = await seedRecord();
  const before = await stored(id);
  const em = db.orm.em.fork();
  const record = await em.findOneOrFail(VaultRecord, id);
  record.ciphertext = Buffer.from(record.ciphertext);
  await em.flush();
  expect(await stored(id)).toEqual(before);
});

test('assigning different bytes is a change: stored at the next version', async () => {
  const id = await seedRecord();
  const em = db.orm.em.fork();
  const record = await em.findOneOrFail(VaultRecord, id);
  const next = ciphertext();
  record.ciphertext = next;
  await em.flush();
  expect(await stored(id)).toEqual({ version: 2, ciphertext: next });
  expect(record.version).toBe(2);
});
