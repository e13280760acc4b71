/**
 * The driver's fast path for `records` batches (src/records-driver.ts) keeps MikroORM's
 * semantics: a batched update of stale rows still fails with OptimisticLockError and writes
 * nothing, inserts map their database defaults back onto the entities, and no ciphertext is
 * inlined into the SQL text.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import { OptimisticLockError, ref } from '@mikro-orm/core';
import { createConfig } from '../src/config.js';
import { Vault, VaultRecord } from '../src/entities/index.js';
import { createTestOrm, type TestOrm } from './support/database.js';
import { ciphertext, envelope } from './support/fixtures.js';

let db: TestOrm;
beforeAll(async () => { db = await createTestOrm(); });
afterAll(async () => { await db?.close(); });

async function seed(count: number): Promise<Vault> {
  const em = db.orm.em.fork();
  const vault = new Vault(`user_${randomUUID()}`, envelope());
  em.persist([vault, ...Array.from({ length: count }, (_, i) => new VaultRecord(ref(vault), vault.userId, `r${i}`, ciphertext(), i + 1))]);
  await em.flush();
  return vault;
}

test('a batched update of rows another writer changed first fails with OptimisticLockError and writes nothing', async () => {
  const vault = await seed(3);
  const first = db.orm.em.fork();
  const second = db.orm.em.fork();
  const mine = await first.find(VaultRecord, { vault: vault.id }, { orderBy: { seq: 'asc' } });
  const theirs = await second.find(VaultRecord, { vault: vault.id }, { orderBy: { seq: 'asc' } });
  theirs.forEach((r, i) => { r.seq = 100 + i; });
  await second.flush();
  mine.forEach((r, i) => { r.seq = 200 + i; });
  await expect(first.flush()).rejects.toBeInstanceOf(OptimisticLockError);
  const { rows } = await db.pool.query<{ seq: string; version: number }>('select seq, version from records where vault_id = $1 order by seq', [vault.id]);
  expect(rows).toEqual([{ seq: '100', version: 2 }, { seq: '101', version: 2 }, { seq: '102', version: 2 }]);
});

test('a batched insert maps the database defaults back, and a batched update the new versions', async () => {
  const em = db.orm.em.fork();
  const vault = new Vault(`user_${randomUUID()}`, envelope());
  const records = [0, 1, 2].map((i) => new VaultRecord(ref(vault), vault.userId, `n${i}`, ciphertext(), i + 1));
  em.persist([vault, ...records]);
  await em.flush();
  for (const r of records) {
    expect(r.version).toBe(1);
    expect(r.createdAt).toBeInstanceOf(Date);
  }
  records[0]!.deleted = true;
  records[0]!.ciphertext = Buffer.alloc(0);
  records[1]!.ciphertext = ciphertext();
  await em.flush();
  expect(records.map((r) => r.version)).toEqual([2, 2, 1]);
  const { rows } = await db.pool.query<{ record_id: string; version: number; deleted: boolean; bytes: number }>(
    'select record_id, version, deleted, octet_length(ciphertext) as bytes from records where vault_id = $1 order by record_id',
    [vault.id],
  );
  expect(rows).toEqual([
    { record_id: 'n0', version: 2, deleted: true, bytes: 0 },
    { record_id: 'n1', version: 2, deleted: false, bytes: 64 },
    { record_id: 'n2', version: 1, deleted: false, bytes: 64 },
  ]);
});

test('records batches bind their parameters: no ciphertext appears in the SQL text', async () => {
  const lines: string[] = [];
  const orm = await MikroORM.init(createConfig(db.url, { debug: ['query'], logger: (line) => lines.push(line) }));
  try {
    const em = orm.em.fork();
    const vault = new Vault(`user_${randomUUID()}`, envelope());
    const secret = Buffer.from('5ec12e7-ciphertext-marker');
    const records = [0, 1].map((i) => new VaultRecord(ref(vault), vault.userId, `s${i}`, Buffer.concat([secret, Buffer.from([i])]), i + 1));
    em.persist([vault, ...records]);
    await em.flush();
    records.forEach((r) => { r.ciphertext = Buffer.concat([secret, Buffer.from('v2')]); });
    await em.flush();
    const recordStatements = lines.filter((l) => l.includes('"records"'));
    expect(recordStatements.some((l) => l.includes('insert into "records"') && l.includes('unnest('))).toBe(true);
    expect(recordStatements.some((l) => l.includes('update "records"') && l.includes('unnest('))).toBe(true);
    for (const l of recordStatements) expect(l).not.toContain(secret.toString('hex'));
  } finally {
    await orm.close(true);
  }
});
