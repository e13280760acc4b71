/**
 * Row-level security, checked with raw SQL: a non-owner role without BYPASSRLS (the production
 * setup of docs/app-role.sql) sees and changes only the rows of the user named by the
 * transaction-local `app.user_id`, and nothing at all without it. The owner sees everything.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAppRole, withLogin, type AppRole } from '../support/app-role.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

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

/** Runs `work` on one app-role connection inside a transaction that is always rolled back. */
async function asApp<T>(userId: string | null, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await app.connect();
  try {
    await client.query('begin');
    if (userId !== null) await client.query(`select set_config('app.user_id', $1, true)`, [userId]);
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
  owner = new pg.Pool({ connectionString: db.url, max: 3 });
  owner.on('error', () => {});
  await seed(A, 3, 1);
  await seed(B, 2, 1);
  role = await createAppRole(db);
  app = new pg.Pool({ connectionString: role.url, max: 3 });
  app.on('error', () => {});
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
    expect(await sqlState(app.query('select * from mikro_orm_migrations'))).toBe('42501');
    expect(await sqlState(app.query('truncate records'))).toBe('42501');
    expect(await sqlState(app.query('create table public.intruder (x int)'))).toBe('42501');
    expect(await sqlState(app.query('alter table vaults disable row level security'))).toBe('42501');
    expect(await sqlState(app.query('drop policy vaults_owner_only on vaults'))).toBe('42501');
    expect(await sqlState(app.query('set role postgres'))).toBe('42501');
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
      await client.query(`select set_config('app.user_id', $1, true)`, [A]);
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
      await client.query(`select set_config('app.user_id', $1, false)`, [A]);
      expect(await count(client, 'records')).toBe(4);
      expect(await count(client, 'records', 'user_id = $1', [B])).toBe(0);
    } finally {
      await client.query('reset app.user_id');
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
    const docRole = new pg.Pool({ connectionString: withLogin(db.url, name, password), max: 1 });
    docRole.on('error', () => {});
    try {
      const attrs = await owner.query(`select rolsuper, rolbypassrls, rolcanlogin from pg_roles where rolname = $1`, [name]);
      expect(attrs.rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcanlogin: true }]);
      const privileges = async (grantee: string) =>
        (await owner.query<{ p: string }>(
          `select table_name || ':' || privilege_type as p from information_schema.role_table_grants
           where grantee = $1 order by 1`,
          [grantee],
        )).rows.map((r) => r.p);
      expect(await privileges(name)).toEqual(await privileges(role.name));
      expect(await privileges(name)).toEqual([
        'key_rotations:DELETE', 'key_rotations:INSERT', 'key_rotations:SELECT', 'key_rotations:UPDATE',
        'records:DELETE', 'records:INSERT', 'records:SELECT', 'records:UPDATE',
        'staged_records:DELETE', 'staged_records:INSERT', 'staged_records:SELECT', 'staged_records:UPDATE',
        'vaults:DELETE', 'vaults:INSERT', 'vaults:SELECT', 'vaults:UPDATE',
      ]);
      expect(await count(docRole, 'vaults')).toBe(0);
      const c = await docRole.connect();
      try {
        await c.query('begin');
        await c.query(`select set_config('app.user_id', $1, true)`, [A]);
        expect(await count(c, 'records')).toBe(4);
        await c.query('rollback');
      } finally {
        c.release();
      }
    } finally {
      await docRole.end();
      await owner.query(`drop owned by "${name}"`);
      await owner.query(`drop role "${name}"`);
    }
  });
});
