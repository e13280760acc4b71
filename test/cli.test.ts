/**
 * The `vault-db` bin (src/cli.ts) as an app runs it: with no URL it fails in one line and
 * starts nothing; two `migrate` at once journal each migration once; `status` is read-only;
 * `validate` passes on a migrated database; `create-app-role` makes the role of docs/app-role.sql
 * (the same grants as test/support/app-role.ts), which row-level security then applies to.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, inject, test } from 'vitest';
import { printableAppRoleStatements } from '../src/app-role.js';
import { migrationsList } from '../src/migrations/index.js';
import { withDatabase } from '../src/pg-client.js';
import { appRoleGrants } from './support/app-role.js';
import { runCli, type CliResult } from './support/cli.js';
import { createTestDatabase, queryOnce, type TestDatabase } from './support/database.js';

const databases: TestDatabase[] = [];
const roles: string[] = [];
afterAll(async () => {
  // Databases first: a role can't be dropped while it holds grants in one.
  await Promise.all(databases.map((db) => db.drop()));
  for (const role of roles) await queryOnce(inject('serverUrl'), `drop role if exists "${role}"`);
});

function cli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return runCli('node', ['--import', 'tsx', 'src/cli.ts', ...args], env, 180_000);
}

async function database(migrate: boolean): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate });
  databases.push(db);
  return db;
}

describe.concurrent('vault-db', () => {
  test('with no URL: exit 2 and one line naming DATABASE_URL, for every command that connects', async ({ expect }) => {
    for (const command of ['migrate', 'status', 'validate']) {
      const result = await cli([command], {});
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^vault-db: No database configured: set DATABASE_URL .*DIRECT_URL/)]);
    }
  });

  test('two migrate at once: each migration journaled once; then status lists them all, applied', async ({ expect }) => {
    const db = await database(false);
    const [first, second] = await Promise.all([cli(['migrate'], { DIRECT_URL: db.url }), cli(['migrate'], { DIRECT_URL: db.url })]);
    expect(first.code, first.stderr).toBe(0);
    expect(second.code, second.stderr).toBe(0);
    const names = (await queryOnce<{ name: string }>(db.url, 'select name from vault_db_migrations order by id')).map((r) => r.name);
    expect(names).toEqual(migrationsList.map((m) => m.name));
    // One run applied them all, the other found nothing to do.
    expect([first.stdout, second.stdout].map((out) => /(\d+) migration\(s\) applied/.exec(out)?.[1]).sort()).toEqual(['0', String(names.length)]);

    const status = await cli(['status'], { DATABASE_URL: db.url });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`applied (${names.length}): ${names.join(', ')}`);
    expect(status.stdout).toContain('pending (0): none');
  });

  test('status on an empty database lists every migration as pending and creates nothing', async ({ expect }) => {
    const db = await database(false);
    const status = await cli(['status'], { DATABASE_URL: db.url });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`pending (${migrationsList.length}): ${migrationsList[0]?.name}`);
    expect(await queryOnce(db.url, `select to_regclass('public.vault_db_migrations') as t`)).toEqual([{ t: null }]);
  });

  test('validate: exit 0 on a migrated database, exit 1 naming a dropped index', async ({ expect }) => {
    const db = await database(true);
    const ok = await cli(['validate'], { DATABASE_URL: db.url });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/matches a freshly migrated database/);
    await queryOnce(db.url, 'drop index idx_records_record_id');
    const drift = await cli(['validate'], { DATABASE_URL: db.url });
    expect(drift.code).toBe(1);
    expect(drift.stderr).toMatch(/idx_records_record_id/);
  });

  test('create-app-role: the grants of docs/app-role.sql, a role subject to row-level security', async ({ expect }) => {
    const db = await database(true);
    const role = `vault_app_cli_${randomBytes(4).toString('hex')}`;
    roles.push(role);
    const printed = await cli(['create-app-role', '--role', role, '--print'], {});
    expect(printed.code, printed.stderr).toBe(0);
    // The bin's statements and the tests' app role grant the same.
    for (const grant of appRoleGrants(role)) expect(printed.stdout).toContain(grant.replaceAll(`"${role}"`, role));
    expect(printed.stdout.trim().split('\n')).toEqual(printableAppRoleStatements(role).map((s) => `${s};`));

    const refused = await cli(['create-app-role', '--role', role], { DIRECT_URL: db.url, VAULT_DB_APP_PASSWORD: 'short' });
    expect(refused.code).toBe(2);
    const password = randomBytes(18).toString('hex');
    const created = await cli(['create-app-role', '--role', role], { DIRECT_URL: db.url, VAULT_DB_APP_PASSWORD: password });
    expect(created.code, created.stderr).toBe(0);
    expect(await queryOnce(db.url, 'select rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolcanlogin from pg_roles where rolname = $1', [role])).toEqual([
      { rolsuper: false, rolbypassrls: false, rolcreatedb: false, rolcreaterole: false, rolcanlogin: true },
    ]);
    const asRole = new URL(withDatabase(inject('serverUrl'), db.name));
    asRole.username = role;
    asRole.password = password;
    expect(await queryOnce(asRole.toString(), 'select count(*)::int as n from vaults')).toEqual([{ n: 0 }]);
    await expect(queryOnce(asRole.toString(), 'select key from public.vault_db_claim_key')).rejects.toMatchObject({ code: '42501' });
  });
});
