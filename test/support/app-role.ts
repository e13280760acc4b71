/**
 * A non-owner application role for a test database, as docs/app-role.sql sets one up in
 * production: it may log in and read and write the two tables, but it owns nothing, is no
 * superuser and has no BYPASSRLS, so the row-level security policies of the migrations apply to it.
 *
 * Roles are cluster-wide while test databases are per file, so each role gets a random name and
 * must be dropped with {@link AppRole.drop} (which also revokes its grants).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { CLAIM_KEY_BYTES, signClaim } from '../../src/sync/claim.js';
import { CLAIM_KEY_ENV } from '../../src/sync/claim-key.js';
import type { TestDatabase } from './database.js';

/** A login role on the test server that is subject to row-level security. */
export interface AppRole {
  /** The role's name, `vault_app_test_<random>`. */
  name: string;
  /** The role's password (random; ignored by servers with trust authentication). */
  password: string;
  /** The test database's direct URL, logging in as this role. */
  url: string;
  /** The same through the pooler (equal to `url` when the test server has none). */
  pooledUrl: string;
  /** The database's claim key, read as the owner: what the service as this role must be given. */
  claimKey: Buffer;
  /** Ends the role's sessions, revokes its grants and drops it. Safe to call twice. */
  drop(): Promise<void>;
}

/**
 * The statements that make `role` the application's role on a migrated database: the same as
 * docs/app-role.sql, minus the comments. No sequence grants are needed: every id is a uuid the
 * ORM generates (or `gen_random_uuid()`), and the feed positions come from `vaults.last_seq`.
 * The trigger functions need no grant: a trigger fires whatever the writer's EXECUTE rights. The
 * policies call `vault_db_current_user()` with the caller's rights, so that one is granted.
 * `key_rotations` and `staged_records` hold staged key rotations.
 */
export function appRoleGrants(role: string): string[] {
  return [
    `grant usage on schema public to "${role}"`,
    `grant select, insert, update, delete on vaults, records, key_rotations, staged_records to "${role}"`,
    `grant execute on function public.vault_db_current_user() to "${role}"`,
  ];
}

/** The claim key of a migrated database, read as the owner (`url` logs in as the owner). */
export async function readDatabaseClaimKey(url: string): Promise<Buffer> {
  const client = new pg.Client(pgConnectionConfig(url));
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows } = await client.query<{ key: Buffer }>('select key from public.vault_db_claim_key where id = 1');
    if (!rows[0]) throw new Error('the database has no claim key');
    return rows[0].key;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Makes `client`'s current transaction act for `userId` the way SyncService does: `app.user_id`
 * and a claim signed with `key`, both transaction-local. Call it after `begin`.
 */
export async function actAs(client: Pick<pg.ClientBase, 'query'>, userId: string, key: Uint8Array, lifetimeSeconds = 60): Promise<void> {
  const claim = signClaim(key, userId, Math.floor(Date.now() / 1000) + lifetimeSeconds);
  await client.query(`select set_config('app.user_id', $1, true), set_config('app.user_claim', $2, true)`, [userId, claim]);
}

async function run(url: string, statements: readonly string[]): Promise<void> {
  const client = new pg.Client(pgConnectionConfig(url));
  client.on('error', () => {});
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end().catch(() => {});
  }
}

/** `url` with another login. */
export function withLogin(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = encodeURIComponent(user);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

/**
 * Creates a non-owner login role without BYPASSRLS on the (migrated) test database `db` and
 * returns URLs that connect to `db` as that role. `db.url` must log in as a role that may create
 * roles: a superuser, or a CREATEROLE owner as on Neon (and on the Neon-shaped stack).
 */
export async function createAppRole(db: Pick<TestDatabase, 'url'> & Partial<Pick<TestDatabase, 'pooledUrl'>>): Promise<AppRole> {
  const name = `vault_app_test_${randomBytes(5).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await run(db.url, [`create role "${name}" login password '${password}' nosuperuser nocreatedb nocreaterole nobypassrls`, ...appRoleGrants(name)]);
  const claimKey = await readDatabaseClaimKey(db.url);
  let dropped = false;
  return {
    name,
    password,
    url: withLogin(db.url, name, password),
    pooledUrl: withLogin(db.pooledUrl ?? db.url, name, password),
    claimKey,
    drop: async () => {
      if (dropped) return;
      dropped = true;
      const client = new pg.Client(pgConnectionConfig(db.url));
      client.on('error', () => {});
      try {
        await client.connect();
      } catch {
        // The database is gone already, and its grants with it: drop the role from the server's
        // maintenance database instead.
        const fallback = new URL(db.url);
        fallback.pathname = '/postgres';
        await run(fallback.toString(), [
          `select pg_terminate_backend(pid) from pg_stat_activity where usename = '${name}'`,
          `drop role if exists "${name}"`,
        ]);
        return;
      }
      try {
        await client.query(`select pg_terminate_backend(pid) from pg_stat_activity where usename = $1`, [name]);
        // `drop owned` needs the privileges of the role. A superuser has them; a CREATEROLE owner
        // has not: on PostgreSQL 16+ it holds only ADMIN OPTION on the roles it creates, and on
        // 15 not even that, but on both it may grant the role to itself first.
        await client.query(`grant "${name}" to current_user`);
        await client.query(`drop owned by "${name}"`);
        await client.query(`drop role if exists "${name}"`);
      } finally {
        await client.end().catch(() => {});
      }
    },
  };
}

/** True when the test run asked for the ORM to connect as the application role. */
export function testsRunAsAppRole(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.VAULT_DB_TEST_AS_APP_ROLE === '1';
}

let processClaimKey: Buffer | undefined;

/**
 * One claim key for every test database of this process that runs the service as the app role,
 * the way one deployment has one key: services built without a `claimKey` option find it in
 * `VAULT_DB_CLAIM_KEY`, whichever of the file's databases they use.
 */
function sharedClaimKey(env: NodeJS.ProcessEnv): Buffer {
  processClaimKey ??= randomBytes(CLAIM_KEY_BYTES);
  env[CLAIM_KEY_ENV] = processClaimKey.toString('hex');
  return processClaimKey;
}

/**
 * The URL the ORM of a test database should use, through the pooler when there is one: with
 * `VAULT_DB_TEST_AS_APP_ROLE=1`, a fresh app role's (see {@link createAppRole}); otherwise the
 * owner's (`db.pooledUrl`). `drop` removes the role,
 * if one was made; call it before dropping the database.
 *
 * Under the switch the database's claim key is replaced (as the owner, with
 * `vault_db_set_claim_key`) by this process's shared key, which is put into `VAULT_DB_CLAIM_KEY`,
 * so every `new SyncService(em)` of the suite signs claims the database accepts, as a deployed
 * service configured with the key does. Every ORM call must then present a claim in its
 * transaction, as SyncService does; tests that write through `orm.em` directly (entities, smoke,
 * constraints) see nothing, so run only the service's suite that way:
 * `VAULT_DB_TEST_AS_APP_ROLE=1 npx vitest run test/sync/`.
 */
export async function ormLoginFor(db: Pick<TestDatabase, 'url' | 'pooledUrl'>, env: NodeJS.ProcessEnv = process.env): Promise<{ url: string; role: string | null; drop(): Promise<void> }> {
  if (!testsRunAsAppRole(env)) return { url: db.pooledUrl, role: null, drop: async () => {} };
  const key = sharedClaimKey(env);
  const client = new pg.Client(pgConnectionConfig(db.url));
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query('select public.vault_db_set_claim_key($1)', [key]);
  } finally {
    await client.end().catch(() => {});
  }
  const role = await createAppRole(db);
  return { url: role.pooledUrl, role: role.name, drop: role.drop };
}
