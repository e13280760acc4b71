/**
 * `npm run db:rollback` and the CLI's error contract, as a user runs them: a rollback reverts
 * the last migration and the next `db:migrate` applies it again; a refusal is one `vault-db:`
 * line; a failure the runner can't explain keeps the CLI's whole report (the driver's error and
 * its stack) instead of being dressed up as a known refusal. The CLI's migrator
 * (src/migrations-runner/cli-migrator.ts) runs only in these child processes.
 */
import { afterEach, expect, test } from 'vitest';
import { runCli } from './support/cli.js';
import { createTestDatabase, queryOnce, type TestDatabase } from './support/database.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function database(migrate: boolean): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate });
  cleanups.push(() => db.drop());
  return db;
}

const journal = (url: string) => queryOnce<{ name: string }>(url, 'select name from vault_db_migrations order by id').then((rows) => rows.map((r) => r.name));

test('npm run db:rollback reverts the last migration only, and db:migrate applies it again', async () => {
  const db = await database(true);
  const applied = await journal(db.url);
  expect(applied.length).toBeGreaterThan(1);

  const rollback = await runCli('npm', ['run', '-s', 'db:rollback'], { DATABASE_URL: db.url }, 120_000);
  expect(rollback.code, rollback.stderr).toBe(0);
  expect(await journal(db.url)).toEqual(applied.slice(0, -1));

  const again = await runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: db.url }, 120_000);
  expect(again.code, again.stderr).toBe(0);
  expect(await journal(db.url)).toEqual(applied);
});

test('npm run db:rollback refuses a URL declared pooled in one line, and reverts nothing', async () => {
  const db = await database(true);
  const applied = await journal(db.url);
  const refused = await runCli('npm', ['run', '-s', 'db:rollback'], { DATABASE_URL: db.url, DATABASE_URL_POOLED: '1' }, 120_000);
  expect(refused.code).toBe(1);
  expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^vault-db: Refusing to migrate through .*DATABASE_URL is declared pooled \(DATABASE_URL_POOLED\)/)]);
  expect(await journal(db.url)).toEqual(applied);
});

test("a failure the runner can't explain keeps the driver's error and its stack, not a one-line refusal; nothing changes", async () => {
  const db = await database(false);
  // A table under the old journal's name that no MikroORM wrote: moving it fails in SQL.
  await queryOnce(db.url, 'create table mikro_orm_migrations (id text)');
  const result = await runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: db.url }, 120_000);
  expect(result.code).not.toBe(0);
  expect(result.stderr).not.toMatch(/^vault-db: /m);
  expect(result.stderr).toContain('column "name" does not exist');
  expect(result.stderr).toMatch(/^\s+at /m);
  expect(await queryOnce(db.url, `select to_regclass('public.vault_db_migrations') as journal`)).toEqual([{ journal: null }]);
});
