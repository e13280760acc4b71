/**
 * The driver's fast path for `records` batches (src/records-driver.ts) keeps MikroORM's
 * semantics: a batched update of stale rows still fails with OptimisticLockError and writes
 * nothing, inserts map their database defaults back onto the entities, and no ciphertext is
 * inlined into the SQL text. Its `find` answers only MikroORM's own lock check: every other query
 * gives exactly what MikroORM's plain PostgreSqlDriver gives.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MikroORM, PostgreSqlDriver } from '@mikro-orm/postgresql';
import { LockMode, OptimisticLockError, ref } from '@mikro-orm/core';
import { createConfig } from '../src/config.js';
import { VaultDbDriver } from '../src/records-driver.js';
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

describe('lock checks deferred to the batched UPDATE (deferLockChecks)', () => {
  /** Runs `work` in a transaction whose lock checks are deferred, logging its statements into `lines`. */
  async function deferred(lines: string[], work: (em: ReturnType<MikroORM['em']['fork']>) => Promise<void>): Promise<void> {
    const logged = await MikroORM.init(createConfig(db.url, { debug: ['query'], logger: (line) => lines.push(line) }));
    try {
      await logged.em.fork().transactional(async (em) => {
        const driver = em.getDriver();
        expect(driver).toBeInstanceOf(VaultDbDriver);
        (driver as VaultDbDriver).deferLockChecks(em.getTransactionContext());
        await work(em);
      });
    } finally {
      await logged.close(true);
    }
  }

  test('a row another writer changed after the read fails the flush with OptimisticLockError, and nothing is written', async () => {
    const vault = await seed(3);
    const lines: string[] = [];
    await expect(
      deferred(lines, async (em) => {
        const mine = await em.find(VaultRecord, { vault: vault.id }, { orderBy: { seq: 'asc' } });
        // Another writer commits a change to the middle record between the read and the flush.
        const other = db.orm.em.fork();
        const theirs = await other.findOneOrFail(VaultRecord, { id: mine[1]!.id });
        theirs.seq = 100;
        await other.flush();
        mine.forEach((r, i) => { r.seq = 200 + i; });
        await em.flush();
      }),
    ).rejects.toBeInstanceOf(OptimisticLockError);
    const { rows } = await db.pool.query<{ seq: string; version: number }>('select seq, version from records where vault_id = $1 order by seq', [vault.id]);
    expect(rows).toEqual([{ seq: '1', version: 1 }, { seq: '3', version: 1 }, { seq: '100', version: 2 }]);
    // The check was the UPDATE's own predicate: no lock-check SELECT went out.
    expect(lines.some((l) => l.includes('update "records"') && l.includes('r."version" = u.expected'))).toBe(true);
    expect(lines.some((l) => l.includes('select distinct id, version from unnest') || l.includes('select "v0"."id" from "records"'))).toBe(false);
  });

  test('without a concurrent writer the batched UPDATE applies every row and maps the new versions back', async () => {
    const vault = await seed(3);
    const lines: string[] = [];
    let records: VaultRecord[] = [];
    await deferred(lines, async (em) => {
      records = await em.find(VaultRecord, { vault: vault.id }, { orderBy: { seq: 'asc' } });
      records.forEach((r, i) => { r.seq = 300 + i; });
      await em.flush();
    });
    expect(records.map((r) => r.version)).toEqual([2, 2, 2]);
    const { rows } = await db.pool.query<{ seq: string; version: number }>('select seq, version from records where vault_id = $1 order by seq', [vault.id]);
    expect(rows).toEqual([300, 301, 302].map((seq) => ({ seq: String(seq), version: 2 })));
    expect(lines.some((l) => l.includes('select distinct id, version from unnest'))).toBe(false);
  });
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

describe('find: the fast path is taken only for MikroORM’s own optimistic-lock check', () => {
  let plain: MikroORM;
  let vault: Vault;
  /** Ids of the seeded records, in record-id order r0..r4; r1 and r3 are at version 2. */
  let ids: string[];

  beforeAll(async () => {
    plain = await MikroORM.init(createConfig(db.url, { driver: PostgreSqlDriver }));
    vault = await seed(5);
    const em = db.orm.em.fork();
    const records = await em.find(VaultRecord, { vault: vault.id }, { orderBy: { recordId: 'asc' } });
    records[1]!.seq = 101;
    records[3]!.seq = 103;
    await em.flush();
    ids = records.map((r) => r.id);
  });
  afterAll(async () => {
    await plain?.close(true);
  });

  /** The lock check's where: which of these (id, version) pairs are current? r2 at version 7 is stale. */
  const lockWhere = () => ({ $or: [{ id: ids[0], version: 1 }, { id: ids[1], version: 2 }, { id: ids[2], version: 7 }, { id: ids[3], version: 2 }] });
  const sorted = (rows: unknown[]) => [...(rows as { id: string }[])].sort((a, b) => a.id.localeCompare(b.id));

  /** Runs the same driver.find through both ORMs, inside a transaction of each (as a flush does). */
  async function both(where: object, options: Record<string, unknown>): Promise<[unknown[], unknown[]]> {
    const run = (orm: MikroORM) =>
      orm.em.fork().transactional(async (em) => em.getDriver().find('VaultDbVaultRecord', where as never, { ...options, ctx: em.getTransactionContext() } as never));
    return [await run(db.orm), await run(plain)];
  }

  test('the exact lock-check call is answered with bound arrays, and gives what MikroORM’s own driver gives', async () => {
    const lines: string[] = [];
    const logged = await MikroORM.init(createConfig(db.url, { debug: ['query'], logger: (line) => lines.push(line) }));
    try {
      const run = (orm: MikroORM) =>
        orm.em.fork().transactional((em) => em.getDriver().find('VaultDbVaultRecord', lockWhere() as never, { ctx: em.getTransactionContext(), fields: ['id'], schema: undefined, loggerContext: { id: 1 } } as never));
      const [fast, reference] = [await run(logged), await run(plain)];
      expect(sorted(fast)).toEqual(sorted(reference));
      expect(sorted(fast)).toEqual(sorted([{ id: ids[0] }, { id: ids[1] }, { id: ids[3] }]));
      expect(lines.some((l) => l.includes('from "records" as r join (select distinct id, version from unnest('))).toBe(true);
    } finally {
      await logged.close(true);
    }
  });

  test('a batched flush still goes through the fast lock check (the shape matched is the one MikroORM really sends)', async () => {
    const lines: string[] = [];
    const logged = await MikroORM.init(createConfig(db.url, { debug: ['query'], logger: (line) => lines.push(line) }));
    try {
      const own = await seed(3);
      const em = logged.em.fork();
      const records = await em.find(VaultRecord, { vault: own.id });
      records.forEach((r) => { r.ciphertext = ciphertext(); });
      await em.flush();
      expect(lines.some((l) => l.includes('select r."id" from "records" as r join (select distinct id, version from unnest('))).toBe(true);
      expect(lines.some((l) => l.includes('select "v0"."id" from "records"'))).toBe(false);
    } finally {
      await logged.close(true);
    }
  });

  const fields = ['id'];
  test.each<[string, () => object, Record<string, unknown>]>([
    ['limit: 1 (the fast path used to return every match)', lockWhere, { fields, limit: 1, orderBy: { id: 'asc' } }],
    ['limit and offset', lockWhere, { fields, limit: 2, offset: 1, orderBy: { id: 'desc' } }],
    ['orderBy', lockWhere, { fields, orderBy: { version: 'desc', id: 'asc' } }],
    ['lockMode (select … for update)', lockWhere, { fields, lockMode: LockMode.PESSIMISTIC_WRITE, orderBy: { id: 'asc' } }],
    ['more fields', lockWhere, { fields: ['id', 'version'], orderBy: { id: 'asc' } }],
    ['no fields', lockWhere, { orderBy: { id: 'asc' } }],
    ['version: { $gte: 1 } (the fast path used to throw)', () => ({ $or: [{ id: ids[0], version: { $gte: 1 } }, { id: ids[1], version: { $gte: 3 } }] }), { fields }],
    ['id: { $in: [...] }', () => ({ $or: [{ id: { $in: [ids[0], ids[2]] }, version: 1 }] }), { fields }],
    ['version: { $ne: 1 }', () => ({ $or: [{ id: ids[1], version: { $ne: 1 } }, { id: ids[4], version: { $ne: 1 } }] }), { fields }],
    ['a branch with a third condition', () => ({ $or: [{ id: ids[0], version: 1, deleted: true }, { id: ids[1], version: 2, deleted: false }] }), { fields }],
    ['a branch without version', () => ({ $or: [{ id: ids[0], recordId: 'r0' }] }), { fields }],
    ['another top-level condition next to $or', () => ({ ...lockWhere(), recordId: { $ne: 'r0' } }), { fields }],
    ['a version beyond int4 (the bound int[] cast would fail)', () => ({ $or: [{ id: ids[0], version: 3_000_000_000 }] }), { fields }],
    ['a string version', () => ({ $or: [{ id: ids[0], version: '1' }] }), { fields }],
    ['an empty $or', () => ({ $or: [] }), { fields }],
  ])('%s gives the same rows through both drivers', async (_label, where, options) => {
    const [fast, reference] = await both(where(), options);
    const ordered = 'orderBy' in options;
    expect(ordered ? fast : sorted(fast)).toEqual(ordered ? reference : sorted(reference));
  });

  test('em.find with the lock-check shape and a limit, as an application would write it, matches too', async () => {
    const run = (orm: MikroORM) => orm.em.fork().find(VaultRecord, lockWhere() as never, { fields: ['id'], limit: 1, orderBy: { id: 'asc' } });
    const [fast, reference] = [await run(db.orm), await run(plain)];
    expect(fast.map((r) => r.id)).toEqual(reference.map((r) => r.id));
    expect(fast).toHaveLength(1);
    const gte = (orm: MikroORM) => orm.em.fork().find(VaultRecord, { $or: [{ id: ids[0], version: { $gte: 1 } }] } as never, { fields: ['id'] });
    expect((await gte(db.orm)).map((r) => r.id)).toEqual((await gte(plain)).map((r) => r.id));
    const populated = (orm: MikroORM) => orm.em.fork().find(VaultRecord, lockWhere() as never, { fields: ['id', 'vault.userId'], populate: ['vault'], orderBy: { id: 'asc' } });
    const [a, b] = [await populated(db.orm), await populated(plain)];
    expect(a.map((r) => [r.id, r.vault.getEntity().userId])).toEqual(b.map((r) => [r.id, r.vault.getEntity().userId]));
    expect(a).toHaveLength(3);
  });
});

