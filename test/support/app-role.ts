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
import type { TestDatabase } from './database.js';

/** A login role on the test server that is subject to row-level security. */
export interface AppRole {
  /** The role's name, `vault_app_test_<random>`. */
  name: string;
  /** The role's password (random; ignored by servers with trust authentication). */
  password: string;
  /** The test database's URL, logging in as this role. */
  url: string;
  /** Ends the role's sessions, revokes its grants and drops it. Safe to call twice. */
  drop(): Promise<void>;
}

/**
 * The statements that make `role` the application's role on a migrated database: the same as
 * docs/app-role.sql, minus the comments. No sequence grants are needed: every id is a uuid the
 * ORM generates (or `gen_random_uuid()`), and the feed positions come from `vaults.last_seq`.
 * The trigger functions need no grant either: EXECUTE is granted to PUBLIC by default, and
 * `vault_db_check_record_owner` runs as its owner (security definer). `key_rotations` and
 * `staged_records` hold staged key rotations.
 */
export function appRoleGrants(role: string): string[] {
  return [
    `grant usage on schema public to "${role}"`,
    `grant select, insert, update, delete on vaults, records, key_rotations, staged_records to "${role}"`,
  ];
}

async function run(url: string, statements: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
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
 * returns a URL that connects to `db` as that role. `db.url` must log in as a role that may
 * create roles (the test server's superuser).
 */
export async function createAppRole(db: Pick<TestDatabase, 'url'>): Promise<AppRole> {
  const name = `vault_app_test_${randomBytes(5).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await run(db.url, [`create role "${name}" login password '${password}' nosuperuser nocreatedb nocreaterole nobypassrls`, ...appRoleGrants(name)]);
  let dropped = false;
  return {
    name,
    password,
    url: withLogin(db.url, name, password),
    drop: async () => {
      if (dropped) return;
      dropped = true;
      const client = new pg.Client({ connectionString: db.url });
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

/**
 * The URL the ORM of a test database should use: with `VAULT_DB_TEST_AS_APP_ROLE=1`, a fresh app
 * role's (see {@link createAppRole}); otherwise the owner's own `db.url`. `drop` removes the role,
 * if one was made; call it before dropping the database.
 *
 * Under the switch every ORM call must set `app.user_id` in its transaction, as SyncService does;
 * tests that write through `orm.em` directly (entities, smoke, constraints) see nothing then, so
 * run only the service's suite that way: `VAULT_DB_TEST_AS_APP_ROLE=1 npx vitest run test/sync/`.
 */
export async function ormLoginFor(db: Pick<TestDatabase, 'url'>, env: NodeJS.ProcessEnv = process.env): Promise<{ url: string; role: string | null; drop(): Promise<void> }> {
  if (!testsRunAsAppRole(env)) return { url: db.url, role: null, drop: async () => {} };
  const role = await createAppRole(db);
  return { url: role.url, role: role.name, drop: role.drop };
}
