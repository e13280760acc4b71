/**
 * The database functions can't be turned against their callers: temp tables shadow none of the
 * tables they read (search_path pinned to `pg_catalog, pg_temp`, tables schema-qualified), nobody
 * but the owner may call them unless granted, and the triggers still fire for the application
 * role, which holds no EXECUTE right on them.
 *
 * The attacker in these tests is a session of the application role that holds a valid claim for
 * its own user B (the best an attacker without the key can have) and targets user A's vault.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signClaim } from '../../src/sync/claim.js';
import { actAs, appRoleGrants, createAppRole, withLogin, type AppRole } from '../support/app-role.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';

const A = `user_a_${randomBytes(4).toString('hex')}`;
const B = `user_b_${randomBytes(4).toString('hex')}`;
const KDF = JSON.stringify({ algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 });

let db: TestDatabase;
let owner: pg.Pool;
let appRole: AppRole;
/** A role made by hand with the application's grants plus an explicit TEMP on the database, nothing else. */
let tempRole: { name: string; url: string };
const vaultOf: Record<string, string> = {};

async function seed(userId: string, records: number): Promise<void> {
  const { rows } = await owner.query<{ id: string }>(
    `insert into vaults (user_id, wrapped_key, salt, kdf_params, last_seq) values ($1, $2, $3, $4, $5) returning id`,
    [userId, randomBytes(60), randomBytes(16), KDF, records],
  );
  vaultOf[userId] = (rows[0] as { id: string }).id;
  for (let i = 1; i <= records; i++) {
    await owner.query(`insert into records (user_id, vault_id, record_id, ciphertext, seq) values ($1, $2, $3, $4, $5)`, [userId, vaultOf[userId], `r${i}`, randomBytes(32), i]);
  }
}

/** Every row of both tables as text, read by the owner. */
async function snapshot(): Promise<string[]> {
  const { rows } = await owner.query<{ t: string }>(`select 'v ' || t::text as t from vaults t union all select 'r ' || t::text from records t order by 1`);
  return rows.map((r) => r.t);
}

/** Records whose user_id is not their vault's: the invariant the owner check keeps. */
async function mismatchedRecords(): Promise<number> {
  const { rows } = await owner.query<{ n: string }>(`select count(*) as n from records r join vaults v on v.id = r.vault_id where r.user_id <> v.user_id`);
  return Number(rows[0]?.n);
}

/** The SQLSTATE `promise` rejects with (and the constraint it names, if any), or 'ok' when it resolves. */
async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    const { code, constraint } = error as { code?: unknown; constraint?: unknown };
    return constraint ? `${String(code)} ${String(constraint)}` : String(code);
  }
}

/** One session of `url`, acting for B with a valid claim, in a transaction that is rolled back. */
async function attackerSession<T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(pgConnectionConfig(url));
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query('begin');
    await actAs(c, B, appRole.claimKey);
    return await work(c);
  } finally {
    await c.query('rollback').catch(() => {});
    await c.end().catch(() => {});
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  owner = testPool(db.url, 2);
  await seed(A, 2);
  await seed(B, 1);
  appRole = await createAppRole(db);
  const name = `vault_temp_only_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(8).toString('hex');
  await owner.query(`create role "${name}" login password '${password}' nosuperuser nocreatedb nocreaterole nobypassrls`);
  for (const sql of appRoleGrants(name)) await owner.query(sql);
  await owner.query(`grant temporary on database "${db.name}" to "${name}"`);
  tempRole = { name, url: withLogin(db.url, name, password) };
});

afterAll(async () => {
  if (tempRole) {
    await owner.query(`select pg_terminate_backend(pid) from pg_stat_activity where usename = $1`, [tempRole.name]).catch(() => {});
    await owner.query(`drop owned by "${tempRole.name}"`).catch(() => {});
    await owner.query(`drop role if exists "${tempRole.name}"`).catch(() => {});
  }
  await owner?.end();
  await appRole?.drop();
  await db?.drop();
});

const roles = () => [['the application role', appRole.url], ['a role with only TEMP and the application grants', tempRole.url]] as const;

describe('temp-table shadowing (issue #12)', () => {
  for (const which of [0, 1] as const) {
    it(`${which === 0 ? 'the application role' : 'a role with only TEMP and the application grants'}: a temp "vaults" that maps A's vault to B does not fool the owner check`, async () => {
      const [, url] = roles()[which];
      const before = await snapshot();
      await attackerSession(url, async (c) => {
        // Temp tables are allowed: the attack needs no privilege beyond what every role has.
        await c.query('create temp table vaults (id uuid, user_id text)');
        await c.query('insert into pg_temp.vaults values ($1, $2)', [vaultOf[A], B]);
        // Put pg_temp first explicitly too: a function's own search_path must win.
        await c.query('set local search_path = pg_temp, public');
        expect(await outcome(c.query(
          `insert into public.records (user_id, vault_id, record_id, ciphertext, seq) values ($1, $2, 'rogue', $3, 1000)`,
          [B, vaultOf[A], randomBytes(16)],
        ))).toBe('23514 records_user_id_matches_vault');
      });
      await attackerSession(url, async (c) => {
        await c.query('create temp table vaults (id uuid, user_id text)');
        await c.query('insert into pg_temp.vaults values ($1, $2)', [vaultOf[A], B]);
        // Moving one of B's own records into A's vault, the other way in.
        expect(await outcome(c.query('update public.records set vault_id = $1 where user_id = $2', [vaultOf[A], B]))).toBe('23514 records_user_id_matches_vault');
      });
      expect(await snapshot()).toEqual(before);
      expect(await mismatchedRecords()).toBe(0);
    });
  }

  it('a temp "vault_db_claim_key" holding a key of the attacker\'s own does not make its claims valid', async () => {
    const forgedKey = randomBytes(32);
    const block = Buffer.concat([forgedKey, Buffer.alloc(32)]);
    const pad = (byte: number) => Buffer.from(block.map((b) => b ^ byte));
    const c = new pg.Client(pgConnectionConfig(appRole.url));
    c.on('error', () => {});
    await c.connect();
    try {
      await c.query('begin');
      await c.query('create temp table vault_db_claim_key (id smallint, key bytea, inner_pad bytea, outer_pad bytea, created_at timestamptz)');
      await c.query('insert into pg_temp.vault_db_claim_key values (1, $1, $2, $3, now())', [forgedKey, pad(0x36), pad(0x5c)]);
      await c.query('set local search_path = pg_temp, public');
      const claim = signClaim(forgedKey, A, Math.floor(Date.now() / 1000) + 60);
      await c.query(`select set_config('app.user_id', $1, true), set_config('app.user_claim', $2, true)`, [A, claim]);
      expect((await c.query('select public.vault_db_current_user() as u')).rows).toEqual([{ u: null }]);
      expect((await c.query('select count(*)::int as n from public.records')).rows).toEqual([{ n: 0 }]);
      expect((await c.query('select count(*)::int as n from public.vaults')).rows).toEqual([{ n: 0 }]);
    } finally {
      await c.query('rollback').catch(() => {});
      await c.end().catch(() => {});
    }
  });
});

describe('the functions of the migrations', () => {
  it('every one pins search_path to pg_catalog, pg_temp', async () => {
    const { rows } = await owner.query<{ name: string; config: string[] | null }>(
      `select p.proname as name, p.proconfig as config from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = 'public' order by 1`,
    );
    expect(rows.length).toBeGreaterThanOrEqual(6);
    for (const row of rows) expect({ name: row.name, config: row.config }).toEqual({ name: row.name, config: ['search_path=pg_catalog, pg_temp'] });
  });

  it('only the owner check and the claim check run as their owner, and PUBLIC may execute neither', async () => {
    const { rows } = await owner.query<{ name: string; public_execute: boolean }>(
      `select p.proname as name,
              exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a where a.grantee = 0 and a.privilege_type = 'EXECUTE') as public_execute
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = 'public' and p.prosecdef order by 1`,
    );
    expect(rows).toEqual([
      { name: 'vault_db_check_record_owner', public_execute: false },
      { name: 'vault_db_current_user', public_execute: false },
    ]);
  });

  it('the application role may execute vault_db_current_user() and nothing else of them', async () => {
    const { rows } = await owner.query<{ name: string; allowed: boolean }>(
      `select p.proname as name, has_function_privilege($1, p.oid, 'EXECUTE') as allowed
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public' order by 1`,
      [appRole.name],
    );
    expect(rows.filter((r) => r.allowed).map((r) => r.name)).toEqual(['vault_db_current_user']);
    expect(rows.map((r) => r.name)).toEqual(expect.arrayContaining([
      'vault_db_check_record_owner', 'vault_db_freeze_vault_user_id', 'vault_db_rotate_claim_key', 'vault_db_set_claim_key', 'vault_db_touch_updated_at',
    ]));
    // Calling one directly is refused.
    expect(await outcome(appQuery('select public.vault_db_rotate_claim_key()'))).toBe('42501');
    expect(await outcome(appQuery(`select public.vault_db_set_claim_key('\\x${'00'.repeat(32)}')`))).toBe('42501');
  });

  it('the triggers still fire for the application role, which may not execute their functions', async () => {
    const before = await snapshot();
    const c = new pg.Client(pgConnectionConfig(appRole.url));
    c.on('error', () => {});
    await c.connect();
    try {
      await c.query('begin');
      await actAs(c, A, appRole.claimKey);
      // vault_db_touch_updated_at: updated_at moves to the transaction's start.
      const touched = await c.query<{ moved: boolean }>(
        `update records set version = version + 1 where record_id = 'r1' returning updated_at = now() as moved`,
      );
      expect(touched.rows).toEqual([{ moved: true }]);
      // vault_db_check_record_owner (a BEFORE trigger, so it speaks before the policy's WITH CHECK).
      await c.query('savepoint s');
      expect(await outcome(c.query(`update records set user_id = $1 where record_id = 'r1'`, [B]))).toBe('23514 records_user_id_matches_vault');
      await c.query('rollback to savepoint s');
      // vault_db_freeze_vault_user_id.
      expect(await outcome(c.query(`update vaults set user_id = user_id || '_x'`))).toBe('23514 vaults_user_id_immutable');
    } finally {
      await c.query('rollback').catch(() => {});
      await c.end().catch(() => {});
    }
    expect(await snapshot()).toEqual(before);
  });
});

/** One statement on a fresh application-role connection. */
async function appQuery(sql: string): Promise<unknown> {
  const c = new pg.Client(pgConnectionConfig(appRole.url));
  c.on('error', () => {});
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end().catch(() => {});
  }
}
