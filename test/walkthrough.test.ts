/**
 * `npm run walkthrough` (examples/walkthrough.ts) as a user runs it: it migrates and reports the same database,
 * refuses in one line when DIRECT_URL and DATABASE_URL are different databases, gives no false
 * drift when DATABASE_URL is the application role, and its walkthrough never writes into the
 * database it reports on.
 */
import { afterAll, beforeAll, describe, inject, test } from 'vitest';
import { createAppRole, type AppRole } from './support/app-role.js';
import { runCli, type CliResult } from './support/cli.js';
import { createTestDatabase, queryOnce, type TestDatabase } from './support/database.js';

const databases: TestDatabase[] = [];
const roles: AppRole[] = [];
afterAll(async () => {
  for (const role of roles) await role.drop().catch(() => {});
  await Promise.all(databases.map((db) => db.drop()));
});

async function database(migrate = false): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate });
  databases.push(db);
  return db;
}

function start(env: Record<string, string>): Promise<CliResult> {
  return runCli('npx', ['tsx', 'examples/walkthrough.ts'], env, 180_000);
}

async function vaultsIn(url: string): Promise<number> {
  const [row] = await queryOnce<{ n: number }>(url, 'select count(*)::int as n from vaults');
  return row?.n ?? 0;
}

async function databaseExists(name: string): Promise<boolean> {
  return (await queryOnce(inject('serverUrl'), `select 1 from pg_database where datname = '${name}'`)).length === 1;
}

let main: TestDatabase;
beforeAll(async () => {
  main = await database();
});

describe.concurrent('npm run walkthrough', () => {
  test('migrates and checks DATABASE_URL; the walkthrough runs in a database of its own, dropped afterwards', async ({ expect }) => {
    const result = await start({ DATABASE_URL: main.url });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^database: {3}DATABASE_URL postgres:\/\/.*\/vault_db_test_/m);
    expect(result.stdout).toMatch(/^migrations: \d+ applied just now, 0 before$/m);
    expect(result.stdout).toMatch(/^schema: {5}valid /m);
    const demo = /Two-device walkthrough, in a database of its own \(.*\/(vault_db_demo_[0-9a-f]+)\)/.exec(result.stdout)?.[1];
    expect(demo).toBeDefined();
    expect(result.stdout).toContain(`(the walkthrough's database ${demo} was dropped)`);
    expect(await databaseExists(demo as string)).toBe(false);
    // Nothing of the walkthrough in the database it reported on.
    expect(await vaultsIn(main.url)).toBe(0);
  });

  test('refuses in one line, migrating nothing, when DIRECT_URL and DATABASE_URL are different databases', async ({ expect }) => {
    const [app, direct] = await Promise.all([database(), database()]);
    const result = await start({ DATABASE_URL: app.url, DIRECT_URL: direct.url });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^vault-db: DIRECT_URL \(127\.0\.0\.1:\d+\/vault_db_test_\w+\) and DATABASE_URL \(127\.0\.0\.1:\d+\/vault_db_test_\w+\) are different databases; .*point both at the same database\.$/),
    ]);
    for (const db of [app, direct]) expect(await queryOnce(db.url, `select to_regclass('public.vault_db_migrations') as t`)).toEqual([{ t: null }]);
  });

  test('migrates through DIRECT_URL when it reaches the same database by another URL', async ({ expect }) => {
    const db = await database();
    const direct = db.url.replace(/^postgres:/, 'postgresql:');
    const result = await start({ DATABASE_URL: db.url, DIRECT_URL: direct });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^migrated: {3}through DIRECT_URL postgresql:\/\/.* \(the same database\)$/m);
    expect(await vaultsIn(db.url)).toBe(0);
  });

  test('as the application role, with DIRECT_URL for the owner: no false drift', async ({ expect }) => {
    const db = await database(true);
    const app = await createAppRole(db);
    roles.push(app);
    const result = await start({ DATABASE_URL: app.url, DIRECT_URL: db.url });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^schema: {5}valid /m);
    expect(await vaultsIn(db.url)).toBe(0);
  });

  test('with VAULT_DB_DEMO_DATABASE_URL, the walkthrough runs in that database and leaves it', async ({ expect }) => {
    const [db, demo] = await Promise.all([database(), database()]);
    const result = await start({ DATABASE_URL: db.url, VAULT_DB_DEMO_DATABASE_URL: demo.url });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Two-device walkthrough, in the demo database');
    expect(await vaultsIn(demo.url)).toBe(1);
    expect(await vaultsIn(db.url)).toBe(0);
  });
});
