/**
 * The database half of signed identity claims: the key stays with the owner, the database's
 * HMAC equals node:crypto's for any user id, the owner can read and rotate the key, and the
 * policies check the claim once per statement (an InitPlan), not once per row.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/postgresql';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConfig } from '../../src/config.js';
import { runMigrations } from '../../src/migrate.js';
import { ConfigurationError } from '../../src/errors.js';
import { claimMessage, signClaim } from '../../src/sync/claim.js';
import { readClaimKey, rotateClaimKey } from '../../src/sync/claim-key.js';
import { actAs, createAppRole, type AppRole } from '../support/app-role.js';
import { createTestDatabase, queryOnce, type TestDatabase, testPool } from '../support/database.js';

const A = `user_a_${randomBytes(4).toString('hex')}`;
const KDF = JSON.stringify({ algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 });
const RECORDS = 40;

let db: TestDatabase;
let owner: pg.Pool;
let role: AppRole;
let app: pg.Pool;

interface KeyRow { key: Buffer; inner_pad: Buffer; outer_pad: Buffer; created_at: Date }
const keyRow = async (): Promise<KeyRow[]> => (await owner.query<KeyRow>('select key, inner_pad, outer_pad, created_at from vault_db_claim_key')).rows;

/** The SQLSTATE `promise` rejects with, or 'ok'. */
async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
}

/** Runs `work` in a rolled-back transaction of the app role acting for `userId` with a valid claim. */
async function asUser<T>(userId: string, work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await app.connect();
  try {
    await c.query('begin');
    await actAs(c, userId, role.claimKey);
    return await work(c);
  } finally {
    await c.query('rollback').catch(() => {});
    c.release();
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  owner = testPool(db.url, 2);
  const { rows } = await owner.query<{ id: string }>(
    `insert into vaults (user_id, wrapped_key, salt, kdf_params, last_seq) values ($1, $2, $3, $4, $5) returning id`,
    [A, randomBytes(60), randomBytes(16), KDF, RECORDS],
  );
  for (let i = 1; i <= RECORDS; i++) {
    await owner.query(`insert into records (user_id, vault_id, record_id, ciphertext, seq) values ($1, $2, $3, $4, $5)`, [A, rows[0]?.id, `r${i}`, randomBytes(16), i]);
  }
  role = await createAppRole(db);
  app = testPool(role.url, 2);
});

afterAll(async () => {
  await app?.end();
  await owner?.end();
  await role?.drop();
  await db?.drop();
});

describe('the key as the migration leaves it', () => {
  it('is one row of 32 bytes with the HMAC pads of RFC 2104, and differs between databases', async () => {
    const rows = await keyRow();
    expect(rows).toHaveLength(1);
    const { key, inner_pad: inner, outer_pad: outer } = rows[0] as KeyRow;
    expect(key).toHaveLength(32);
    const block = Buffer.concat([key, Buffer.alloc(32)]);
    expect(inner).toEqual(Buffer.from(block.map((b) => b ^ 0x36)));
    expect(outer).toEqual(Buffer.from(block.map((b) => b ^ 0x5c)));
    expect(key.equals(Buffer.alloc(32))).toBe(false);

    // Two databases migrated here from empty, not cloned from the run's template (a clone gets its
    // key from vault_db_rotate_claim_key()): the migration itself must make a random key.
    const migrated = [await createTestDatabase({ migrate: false }), await createTestDatabase({ migrate: false })];
    try {
      const keys: Buffer[] = [];
      for (const other of migrated) {
        await runMigrations({ url: other.url, log: () => {} });
        const [row] = await queryOnce<{ key: Buffer }>(other.url, 'select key from vault_db_claim_key');
        expect(row?.key).toHaveLength(32);
        keys.push(row?.key as Buffer);
      }
      expect((keys[0] as Buffer).equals(keys[1] as Buffer)).toBe(false);
      expect(keys.some((k) => k.equals(key))).toBe(false);
    } finally {
      await Promise.all(migrated.map((other) => other.drop()));
    }
  });

  it('a second row, or a key of another length, is refused', async () => {
    expect(await outcome(owner.query(`insert into vault_db_claim_key (id, key, inner_pad, outer_pad) select 2, key, inner_pad, outer_pad from vault_db_claim_key`))).toBe('23514');
    expect(await outcome(owner.query(`select vault_db_set_claim_key($1)`, [randomBytes(31)]))).toBe('22023');
    expect(await outcome(owner.query(`select vault_db_set_claim_key($1)`, [randomBytes(64)]))).toBe('22023');
    expect(await outcome(owner.query(`select vault_db_set_claim_key(null)`))).toBe('22023');
    expect(await keyRow()).toHaveLength(1);
  });
});

describe('the application role and the key', () => {
  it('can not read, change, add or remove it, nor call the functions that set it', async () => {
    const before = await keyRow();
    for (const sql of [
      'select key from public.vault_db_claim_key',
      'select count(*) from public.vault_db_claim_key',
      "update public.vault_db_claim_key set key = '\\x00'",
      'delete from public.vault_db_claim_key',
      'truncate public.vault_db_claim_key',
      `insert into public.vault_db_claim_key (id, key, inner_pad, outer_pad) values (1, '\\x00', '\\x00', '\\x00')`,
      'select public.vault_db_rotate_claim_key()',
      `select public.vault_db_set_claim_key('\\x${'11'.repeat(32)}')`,
      'alter table public.vault_db_claim_key disable row level security',
      'create or replace function public.vault_db_current_user() returns text language sql as $$ select current_setting($q$app.user_id$q$) $$',
    ]) {
      expect({ sql, state: await outcome(app.query(sql)) }).toEqual({ sql, state: '42501' });
    }
    // Statistics of a table the role can't read are hidden from it too.
    await owner.query('analyze vault_db_claim_key');
    expect((await app.query(`select count(*)::int as n from pg_stats where tablename = 'vault_db_claim_key'`)).rows).toEqual([{ n: 0 }]);
    expect(await keyRow()).toEqual(before);
  });
});

describe("the database's HMAC", () => {
  const awkward = ['a', 'user:with:colons', "o'brien; drop table vaults; --", 'émoji 🔑 رمز', `x${'y'.repeat(254)}`, '1795990000:forged'];

  it("equals node:crypto's HMAC-SHA-256 for awkward user ids, and accepts exactly the claim signed for the id", async () => {
    const { key } = (await keyRow())[0] as KeyRow;
    for (const userId of awkward) {
      const expiresAt = Math.floor(Date.now() / 1000) + 60;
      const sql = await owner.query<{ mac: string }>(
        `select encode(sha256(outer_pad || sha256(inner_pad || convert_to($1, 'UTF8'))), 'hex') as mac from vault_db_claim_key`,
        [claimMessage(userId, expiresAt)],
      );
      expect(sql.rows[0]?.mac).toBe(createHmac('sha256', key).update(claimMessage(userId, expiresAt)).digest('hex'));
      const c = await app.connect();
      try {
        await c.query('begin');
        await c.query(`select set_config('app.user_id', $1, true), set_config('app.user_claim', $2, true)`, [userId, signClaim(key, userId, expiresAt)]);
        expect((await c.query('select public.vault_db_current_user() as u')).rows).toEqual([{ u: userId }]);
        // The same claim for a user id that is a prefix or an extension of it is refused.
        await c.query(`select set_config('app.user_id', $1, true)`, [`${userId}x`]);
        expect((await c.query('select public.vault_db_current_user() as u')).rows).toEqual([{ u: null }]);
      } finally {
        await c.query('rollback').catch(() => {});
        c.release();
      }
    }
  });
});

describe('the policies', () => {
  it('are written against vault_db_current_user() in a scalar subquery', async () => {
    const { rows } = await owner.query(`select tablename, policyname, qual, with_check from pg_policies where schemaname = 'public' and tablename in ('vaults', 'records') order by 1`);
    const check = '(user_id = ( SELECT vault_db_current_user() AS vault_db_current_user))';
    expect(rows).toEqual([
      { tablename: 'records', policyname: 'records_owner_only', qual: check, with_check: check },
      { tablename: 'vaults', policyname: 'vaults_owner_only', qual: check, with_check: check },
    ]);
  });

  it('check the claim once per statement (an InitPlan), not once per row', async () => {
    type PlanNode = { 'Node Type': string; 'Parent Relationship'?: string; 'Subplan Name'?: string; 'Actual Loops'?: number; 'Actual Rows'?: number; Plans?: PlanNode[] };
    const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)];
    await asUser(A, async (c) => {
      for (const [sql, initPlans, rows] of [
        ['select * from records', 1, RECORDS],
        ['select r.record_id from records r join vaults v on v.id = r.vault_id', 2, RECORDS],
        // USING and WITH CHECK: one InitPlan each, still once per statement.
        [`update records set version = version where deleted = false`, 2, 0],
      ] as const) {
        const { rows: explained } = await c.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(`explain (analyze, format json) ${sql}`);
        const all = nodes((explained[0]?.['QUERY PLAN'][0] as { Plan: PlanNode }).Plan);
        const inits = all.filter((n) => n['Parent Relationship'] === 'InitPlan');
        expect({ sql, initPlans: inits.length }).toEqual({ sql, initPlans });
        // Each InitPlan ran once, while the scan it guards produced every row of the vault.
        for (const init of inits) expect(init['Actual Loops']).toBe(1);
        expect(all.some((n) => n['Parent Relationship'] === 'SubPlan')).toBe(false);
        if (rows > 0) expect(explained[0]?.['QUERY PLAN'][0]?.Plan['Actual Rows']).toBe(rows);
      }
    });
  });
});

describe('readClaimKey and rotateClaimKey', () => {
  it('as the owner: read the key; rotation installs a new random key with matching pads, and old claims stop working', async () => {
    const ownerOrm = await MikroORM.init(createConfig(db.url, { pool: { min: 0, max: 1 } }));
    try {
      const before = (await keyRow())[0] as KeyRow;
      expect(await readClaimKey(ownerOrm.em)).toBe(before.key.toString('hex'));
      const oldClaim = signClaim(before.key, A, Math.floor(Date.now() / 1000) + 60);

      const rotated = await rotateClaimKey(ownerOrm.em);
      expect(rotated).toMatch(/^[0-9a-f]{64}$/);
      const after = (await keyRow())[0] as KeyRow;
      expect(after.key.toString('hex')).toBe(rotated);
      expect(after.key.equals(before.key)).toBe(false);
      const block = Buffer.concat([after.key, Buffer.alloc(32)]);
      expect(after.inner_pad).toEqual(Buffer.from(block.map((b) => b ^ 0x36)));
      expect(after.outer_pad).toEqual(Buffer.from(block.map((b) => b ^ 0x5c)));
      expect(after.created_at.getTime()).toBeGreaterThanOrEqual(before.created_at.getTime());

      const c = await app.connect();
      try {
        await c.query('begin');
        await c.query(`select set_config('app.user_id', $1, true), set_config('app.user_claim', $2, true)`, [A, oldClaim]);
        expect((await c.query('select count(*)::int as n from records')).rows).toEqual([{ n: 0 }]);
        await c.query('rollback');
        await c.query('begin');
        await c.query(`select set_config('app.user_id', $1, true), set_config('app.user_claim', $2, true)`, [A, signClaim(after.key, A, Math.floor(Date.now() / 1000) + 60)]);
        expect((await c.query('select count(*)::int as n from records')).rows).toEqual([{ n: RECORDS }]);
      } finally {
        await c.query('rollback').catch(() => {});
        c.release();
      }
    } finally {
      // The rest of the file signs with the key the app role was created with.
      await owner.query('select vault_db_set_claim_key($1)', [role.claimKey]);
      await ownerOrm.close(true);
    }
  });

  it('as the application role: ConfigurationError that says who may, and the key is unchanged', async () => {
    const appOrm = await MikroORM.init(createConfig(role.url, { pool: { min: 0, max: 1 } }));
    try {
      const before = await keyRow();
      const read = await readClaimKey(appOrm.em).catch((e: unknown) => e);
      expect(read).toBeInstanceOf(ConfigurationError);
      expect((read as Error).message).toMatch(/only the owner may/);
      const rotate = await rotateClaimKey(appOrm.em).catch((e: unknown) => e);
      expect(rotate).toBeInstanceOf(ConfigurationError);
      expect((rotate as Error).message).toMatch(/Only the owner role may rotate/);
      expect(await keyRow()).toEqual(before);
    } finally {
      await appOrm.close(true);
    }
  });
});
