/**
 * Row-level security, checked with raw SQL: a non-owner role without BYPASSRLS (the production
 * setup of docs/app-role.sql) sees and changes only the rows of the user named by the
 * transaction-local `app.user_id` AND vouched for by a valid signed claim (`app.user_claim`), and
 * nothing at all otherwise: naming a user is not enough. The owner sees everything.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signClaim } from '../../src/sync/claim.js';
import { actAs, createAppRole, withLogin, type AppRole } from '../support/app-role.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';

const A = `user_a_${randomBytes(4).toString('hex')}`;
const B = `user_b_${randomBytes(4).toString('hex')}`;
const KDF = JSON.stringify({ algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 });

let db: TestDatabase;
let role: AppRole;
let owner: pg.Pool;
let app: pg.Pool;
const vaultOf: Record<string, string> = {};

/** Every row of both tables as text, read by the owner: the state nothing in this file may change. */
async function snapshot(): Promise<{ vaults: string[]; records: string[] }> {
  const vaults = await owner.query<{ t: string }>('select t::text as t from vaults t order by 1');
  const records = await owner.query<{ t: string }>('select t::text as t from records t order by 1');
  return { vaults: vaults.rows.map((r) => r.t), records: records.rows.map((r) => r.t) };
}

async function seed(userId: string, records: number, tombstones: number): Promise<void> {
  const { rows } = await owner.query<{ id: string }>(
    `insert into vaults (user_id, wrapped_key, salt, kdf_params, last_seq) values ($1, $2, $3, $4, $5) returning id`,
    [userId, randomBytes(60), randomBytes(16), KDF, records + tombstones],
  );
  const vaultId = (rows[0] as { id: string }).id;
  vaultOf[userId] = vaultId;
  for (let i = 1; i <= records + tombstones; i++) {
    const dead = i > records;
    await owner.query(
      `insert into records (user_id, vault_id, record_id, ciphertext, deleted, seq) values ($1, $2, $3, $4, $5, $6)`,
      [userId, vaultId, `${userId}-r${i}`, dead ? Buffer.alloc(0) : randomBytes(32), dead, i],
    );
  }
}

/**
 * Runs `work` on one app-role connection inside a transaction that is always rolled back. With a
 * user id, the transaction acts for that user as SyncService does (the id and a valid claim).
 */
async function asApp<T>(userId: string | null, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await app.connect();
  try {
    await client.query('begin');
    if (userId !== null) await actAs(client, userId, role.claimKey);
    return await work(client);
  } finally {
    await client.query('rollback').catch(() => {});
    client.release();
  }
}

/** The SQLSTATE of the error `promise` rejects with. */
async function sqlState(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as { code?: unknown }).code);
  }
  throw new Error('expected the statement to be rejected');
}

const count = async (client: pg.ClientBase | pg.Pool, table: string, where = 'true', params: unknown[] = []): Promise<number> =>
  Number((await client.query<{ n: string }>(`select count(*) as n from ${table} where ${where}`, params)).rows[0]?.n);

beforeAll(async () => {
  db = await createTestDatabase();
  owner = testPool(db.url, 3);
  await seed(A, 3, 1);
  await seed(B, 2, 1);
  role = await createAppRole(db);
  app = testPool(role.url, 3);
});

afterAll(async () => {
  await app?.end();
  await owner?.end();
  await role?.drop();
  await db?.drop();
});

describe('the application role', () => {
  it('is a login role that owns nothing and can not bypass row-level security', async () => {
    const { rows } = await owner.query(
      `select rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb from pg_roles where rolname = $1`,
      [role.name],
    );
    expect(rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcanlogin: true, rolcreaterole: false, rolcreatedb: false }]);
    const owners = await owner.query<{ tableowner: string; rowsecurity: boolean }>(
      `select tableowner, rowsecurity from pg_tables where schemaname = 'public' and tablename in ('vaults', 'records')`,
    );
    expect(owners.rows).toHaveLength(2);
    for (const row of owners.rows) {
      expect(row.tableowner).not.toBe(role.name);
      expect(row.rowsecurity).toBe(true);
    }
    const me = await app.query<{ current_user: string }>('select current_user');
    expect(me.rows[0]?.current_user).toBe(role.name);
  });

  it('has no privilege beyond rows of the two tables', async () => {
    expect(await sqlState(app.query('select * from vault_db_migrations'))).toBe('42501');
    expect(await sqlState(app.query('truncate records'))).toBe('42501');
    expect(await sqlState(app.query('create table public.intruder (x int)'))).toBe('42501');
    expect(await sqlState(app.query('alter table vaults disable row level security'))).toBe('42501');
    expect(await sqlState(app.query('drop policy vaults_owner_only on vaults'))).toBe('42501');
    // The owner: `postgres` on the embedded server, neondb_owner on the Neon-shaped stack.
    const ownerName = (await owner.query<{ current_user: string }>('select current_user')).rows[0]?.current_user;
    expect(await sqlState(app.query(`set role "${ownerName}"`))).toBe('42501');
  });
});

describe('with no app.user_id', () => {
  it('sees no row of either table, even when naming a user', async () => {
    const check = async (c: pg.ClientBase | pg.Pool) => {
      expect(await count(c, 'vaults')).toBe(0);
      expect(await count(c, 'records')).toBe(0);
      expect(await count(c, 'records', 'user_id = $1', [A])).toBe(0);
      expect(await count(c, 'vaults', 'id = $1', [vaultOf[A]])).toBe(0);
      const setting = await c.query<{ s: string | null }>(`select current_setting('app.user_id', true) as s`);
      expect(setting.rows[0]?.s ?? '').toBe('');
    };
    await check(app); // autocommit, a fresh session
    await asApp(null, check); // inside a transaction that set nothing
  });

  it('updates and deletes no row', async () => {
    const before = await snapshot();
    await asApp(null, async (c) => {
      expect((await c.query('update vaults set version = version + 1, last_seq = 0')).rowCount).toBe(0);
      expect((await c.query('update records set ciphertext = $1', [randomBytes(8)])).rowCount).toBe(0);
      expect((await c.query('update records set deleted = true, ciphertext = $1 where user_id = $2', [Buffer.alloc(0), A])).rowCount).toBe(0);
      expect((await c.query('delete from records')).rowCount).toBe(0);
      expect((await c.query('delete from vaults where user_id = $1', [A])).rowCount).toBe(0);
      expect((await c.query('select id from vaults for update')).rowCount).toBe(0);
    });
    // Autocommit too, so nothing hides behind the rollback.
    expect((await app.query('delete from records')).rowCount).toBe(0);
    expect((await app.query('delete from vaults')).rowCount).toBe(0);
    expect((await app.query('update vaults set last_seq = last_seq + 1')).rowCount).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it('can insert nothing', async () => {
    const before = await snapshot();
    expect(await sqlState(app.query(
      `insert into vaults (user_id, wrapped_key, salt, kdf_params) values ($1, $2, $3, $4)`,
      [`user_c_${randomBytes(3).toString('hex')}`, randomBytes(60), randomBytes(16), KDF],
    ))).toBe('42501');
    expect(await sqlState(app.query(
      `insert into records (user_id, vault_id, record_id, ciphertext, seq) values ($1, $2, 'planted', $3, 1000)`,
      [A, vaultOf[A], randomBytes(8)],
    ))).toBe('42501');
    expect(await snapshot()).toEqual(before);
  });

  it('a transaction-local setting ends with its transaction, so pooled connections never carry it over', async () => {
    const client = await app.connect();
    try {
      await client.query('begin');
      await actAs(client, A, role.claimKey);
      expect(await count(client, 'records')).toBe(4);
      await client.query('commit');
      expect(await count(client, 'records')).toBe(0);
      expect(await count(client, 'vaults')).toBe(0);
    } finally {
      client.release();
    }
  });
});

describe("with another user's app.user_id", () => {
  it("sees nothing of user A's, and exactly B's own rows", async () => {
    await asApp(B, async (c) => {
      expect(await count(c, 'vaults', 'user_id = $1', [A])).toBe(0);
      expect(await count(c, 'records', 'user_id = $1 or vault_id = $2', [A, vaultOf[A]])).toBe(0);
      const vaults = await c.query<{ user_id: string }>('select user_id from vaults');
      expect(vaults.rows.map((r) => r.user_id)).toEqual([B]);
      const records = await c.query<{ user_id: string }>('select distinct user_id from records');
      expect(records.rows.map((r) => r.user_id)).toEqual([B]);
      // A join or a subquery can't reach around the policy either.
      expect(await count(c, 'records r join vaults v on v.id = r.vault_id', 'v.user_id = $1', [A])).toBe(0);
      expect(await count(c, 'records', 'vault_id in (select id from vaults where user_id = $1)', [A])).toBe(0);
    });
  });

  it("changes nothing of user A's", async () => {
    const before = await snapshot();
    await asApp(B, async (c) => {
      expect((await c.query('update vaults set version = version + 1 where user_id = $1', [A])).rowCount).toBe(0);
      expect((await c.query('update records set ciphertext = $1 where user_id = $2', [randomBytes(8), A])).rowCount).toBe(0);
      expect((await c.query('update records set ciphertext = $1 where vault_id = $2', [randomBytes(8), vaultOf[A]])).rowCount).toBe(0);
      expect((await c.query('delete from records where user_id = $1', [A])).rowCount).toBe(0);
      expect((await c.query('delete from vaults where id = $1', [vaultOf[A]])).rowCount).toBe(0);
      expect((await c.query('select id from records where user_id = $1 for update', [A])).rowCount).toBe(0);
      // An unfiltered write reaches B's rows only.
      expect((await c.query('update records set version = version + 1')).rowCount).toBe(3);
      expect((await c.query('delete from records')).rowCount).toBe(3);
    });
    expect(await snapshot()).toEqual(before);
  });

  it("can not insert or move rows into user A's vault", async () => {
    const before = await snapshot();
    await asApp(B, async (c) => {
      // A record carrying A's user_id: the policy's WITH CHECK rejects it.
      expect(await sqlState(c.query(
        `insert into records (user_id, vault_id, record_id, ciphertext, seq) values ($1, $2, 'planted', $3, 1000)`,
        [A, vaultOf[A], randomBytes(8)],
      ))).toBe('42501');
    });
    await asApp(B, async (c) => {
      // B's user_id in A's vault: the owner trigger (security definer) sees A's vault and rejects it.
      expect(await sqlState(c.query(
        `insert into records (user_id, vault_id, record_id, ciphertext, seq) values ($1, $2, 'planted', $3, 1000)`,
        [B, vaultOf[A], randomBytes(8)],
      ))).toBe('23514');
    });
    await asApp(B, async (c) => {
      expect(await sqlState(c.query(
        `insert into vaults (user_id, wrapped_key, salt, kdf_params) values ($1, $2, $3, $4)`,
        [A, randomBytes(60), randomBytes(16), KDF],
      ))).toBe('42501');
    });
    await asApp(B, async (c) => {
      // Handing one of B's records to A, or moving it into A's vault.
      expect(['42501', '23514']).toContain(await sqlState(c.query('update records set user_id = $1 where user_id = $2', [A, B])));
    });
    await asApp(B, async (c) => {
      expect(await sqlState(c.query('update records set vault_id = $1 where user_id = $2', [vaultOf[A], B]))).toBe('23514');
    });
    await asApp(B, async (c) => {
      expect(['42501', '23514']).toContain(await sqlState(c.query('update vaults set user_id = $1 where user_id = $2', [A, B])));
    });
    expect(await snapshot()).toEqual(before);
  });
});

describe('impersonation: naming user A without a valid claim for A', () => {
  const inAMinute = () => Math.floor(Date.now() / 1000) + 60;
  const validForA = () => signClaim(role.claimKey, A, inAMinute());

  /** Runs `work` in a rolled-back app-role transaction that sets `app.user_id` to A and `app.user_claim` to `claim` (unless null). */
  async function claimingA<T>(claim: string | null, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await app.connect();
    try {
      await client.query('begin');
      await client.query(`select set_config('app.user_id', $1, true)`, [A]);
      if (claim !== null) await client.query(`select set_config('app.user_claim', $1, true)`, [claim]);
      return await work(client);
    } finally {
      await client.query('rollback').catch(() => {});
      client.release();
    }
  }

  const attempts: [string, () => string | null][] = [
    ['no claim at all (the honour system of before)', () => null],
    ['an empty claim', () => ''],
    ['a forged signature', () => `${inAMinute()}.${randomBytes(32).toString('hex')}`],
    ['a claim signed with a key of its own', () => signClaim(randomBytes(32), A, inAMinute())],
    ['an expired claim', () => signClaim(role.claimKey, A, Math.floor(Date.now() / 1000) - 1)],
    ["user B's own valid claim", () => signClaim(role.claimKey, B, inAMinute())],
    ['a valid claim for A whose expiry was moved later', () => `${inAMinute() + 3600}.${validForA().split('.')[1]}`],
    ['the signature of a valid claim without its expiry', () => validForA().split('.')[1] as string],
    ['a valid claim with SQL appended', () => `${validForA()}' or true --`],
    ['a valid claim in upper case', () => validForA().toUpperCase()],
    ['a valid claim one hex digit short', () => validForA().slice(0, -1)],
    ['a valid claim with one hex digit more', () => `${validForA()}0`],
    ['an expiry of 16 digits', () => `${'9'.repeat(16)}.${validForA().split('.')[1]}`],
    ['two expiries', () => `1.${validForA()}`],
  ];

  for (const [label, claim] of attempts) {
    it(`${label}: sees none of A's rows, changes none and inserts none`, async () => {
      const before = await snapshot();
      await claimingA(claim(), async (c) => {
        const who = await c.query<{ u: string | null }>('select public.vault_db_current_user() as u');
        expect(who.rows).toEqual([{ u: null }]);
        expect(await count(c, 'vaults')).toBe(0);
        expect(await count(c, 'records')).toBe(0);
        expect(await count(c, 'records', 'user_id = $1 or vault_id = $2', [A, vaultOf[A]])).toBe(0);
        expect((await c.query('update vaults set version = version + 1')).rowCount).toBe(0);
        expect((await c.query('update records set ciphertext = $1 where user_id = $2', [randomBytes(8), A])).rowCount).toBe(0);
        expect((await c.query('delete from records')).rowCount).toBe(0);
        expect((await c.query('delete from vaults')).rowCount).toBe(0);
      });
      await claimingA(claim(), async (c) => {
        expect(await sqlState(c.query(
          `insert into records (user_id, vault_id, record_id, ciphertext, seq) values ($1, $2, 'planted', $3, 1000)`,
          [A, vaultOf[A], randomBytes(8)],
        ))).toBe('42501');
      });
      expect(await snapshot()).toEqual(before);
    });
  }

  it("a valid claim for A still works (so the attempts above fail for their flaw, not for the setup)", async () => {
    await claimingA(validForA(), async (c) => {
      expect(await count(c, 'records')).toBe(4);
      expect(await count(c, 'vaults')).toBe(1);
    });
  });

  it('a claim that worked stops working once it expires; a transaction begun before its expiry keeps it', async () => {
    const dbNow = async (c: pg.ClientBase | pg.Pool) => Number((await c.query<{ t: string }>('select extract(epoch from clock_timestamp()) as t')).rows[0]?.t);
    const expiry = Math.floor(await dbNow(owner)) + 2;
    const claim = signClaim(role.claimKey, A, expiry);
    const early = await app.connect();
    try {
      await early.query('begin');
      await early.query(`select set_config('app.user_id', $1, true), set_config('app.user_claim', $2, true)`, [A, claim]);
      expect(await count(early, 'records')).toBe(4);
      // Wait (by the database's clock) until the claim has expired.
      while ((await dbNow(owner)) < expiry + 0.2) await new Promise((r) => setTimeout(r, 200));
      // The open transaction started before the expiry: checks use its start time, now().
      expect(await count(early, 'records')).toBe(4);
      await early.query('commit');
    } finally {
      early.release();
    }
    // Replayed in a new transaction, the same claim is refused.
    await claimingA(claim, async (c) => {
      expect(await count(c, 'records')).toBe(0);
      expect(await count(c, 'vaults')).toBe(0);
    });
  });
});

describe("with user A's app.user_id", () => {
  it("sees exactly A's rows", async () => {
    const ownerVaults = await owner.query<{ t: string }>('select t::text as t from vaults t where user_id = $1 order by 1', [A]);
    const ownerRecords = await owner.query<{ t: string }>('select t::text as t from records t where user_id = $1 order by 1', [A]);
    expect(ownerVaults.rows).toHaveLength(1);
    expect(ownerRecords.rows).toHaveLength(4);
    await asApp(A, async (c) => {
      expect((await c.query<{ t: string }>('select t::text as t from vaults t order by 1')).rows).toEqual(ownerVaults.rows);
      expect((await c.query<{ t: string }>('select t::text as t from records t order by 1')).rows).toEqual(ownerRecords.rows);
      // and may change them
      expect((await c.query('update records set version = version + 1')).rowCount).toBe(4);
      expect((await c.query('update vaults set last_seq = last_seq + 1')).rowCount).toBe(1);
    });
  });

  it('a session-wide setting is confined to the same user (the service never uses one, but raw SQL could)', async () => {
    const client = await app.connect();
    try {
      const claim = signClaim(role.claimKey, A, Math.floor(Date.now() / 1000) + 60);
      await client.query(`select set_config('app.user_id', $1, false), set_config('app.user_claim', $2, false)`, [A, claim]);
      expect(await count(client, 'records')).toBe(4);
      expect(await count(client, 'records', 'user_id = $1', [B])).toBe(0);
    } finally {
      await client.query('reset app.user_id; reset app.user_claim');
      client.release();
    }
  });
});

describe('the owner', () => {
  it('is not subject to the policies and sees every row', async () => {
    expect(await count(owner, 'vaults')).toBe(2);
    expect(await count(owner, 'records')).toBe(7);
    expect(await count(owner, 'records', 'user_id = $1', [A])).toBe(4);
    expect(await count(owner, 'records', 'user_id = $1', [B])).toBe(3);
  });
});

describe('docs/app-role.sql', () => {
  it('applies on a migrated database and gives a role the same rights as the test helper', async () => {
    const name = `vault_app_doc_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(8).toString('hex');
    const script = (await readFile(new URL('../../docs/app-role.sql', import.meta.url), 'utf8'))
      .replaceAll('vault_app', name)
      .replace("'change-me'", `'${password}'`);
    await owner.query(script);
    const docRole = testPool(withLogin(db.url, name, password), 1);
    try {
      const attrs = await owner.query(`select rolsuper, rolbypassrls, rolcanlogin from pg_roles where rolname = $1`, [name]);
      expect(attrs.rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcanlogin: true }]);
      // Table and function privileges, the latter read from the ACLs themselves.
      const privileges = async (grantee: string) =>
        (await owner.query<{ p: string }>(
          `select table_name || ':' || privilege_type as p from information_schema.role_table_grants where grantee = $1
           union all
           select p.proname || '():' || a.privilege_type from pg_proc p cross join aclexplode(p.proacl) a
           join pg_roles r on r.oid = a.grantee where r.rolname = $1
           order by 1`,
          [grantee],
        )).rows.map((r) => r.p);
      expect(await privileges(name)).toEqual(await privileges(role.name));
      expect(await privileges(name)).toEqual([
        'key_rotations:DELETE', 'key_rotations:INSERT', 'key_rotations:SELECT', 'key_rotations:UPDATE',
        'records:DELETE', 'records:INSERT', 'records:SELECT', 'records:UPDATE',
        'staged_records:DELETE', 'staged_records:INSERT', 'staged_records:SELECT', 'staged_records:UPDATE',
        'vault_db_current_user():EXECUTE',
        'vaults:DELETE', 'vaults:INSERT', 'vaults:SELECT', 'vaults:UPDATE',
      ]);
      expect(await count(docRole, 'vaults')).toBe(0);
      const c = await docRole.connect();
      try {
        await c.query('begin');
        await actAs(c, A, role.claimKey);
        expect(await count(c, 'records')).toBe(4);
        await c.query('rollback');
      } finally {
        c.release();
      }
    } finally {
      await docRole.end();
      // As docs/app-role.sql says: a non-superuser owner (Neon's) needs the role's privileges for `drop owned`.
      await owner.query(`grant "${name}" to current_user`);
      await owner.query(`drop owned by "${name}"`);
      await owner.query(`drop role "${name}"`);
    }
  });
});
