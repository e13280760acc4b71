/**
 * `scripts/schema-validate.ts` (npm run schema:validate) as CI runs it: exit 0 on a database the
 * migrations built, exit 1 naming the difference when someone changed the schema by hand.
 */
import { afterAll, beforeAll, describe, inject, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { adminQuery } from '../scripts/database-admin.js';
import { runCli, type CliResult } from './support/cli.js';

/** Runs the script against `url`; DATABASE_URL points at the test server so it never starts its own. */
function validate(url: string): Promise<CliResult> {
  return runCli('npx', ['tsx', 'scripts/schema-validate.ts', '--database-url', url], { DATABASE_URL: inject('serverUrl') });
}

const databases: TestDatabase[] = [];
/** A migrated database, altered by `sql` when given. */
async function migratedDatabase(sql?: string): Promise<string> {
  const db = await createTestDatabase();
  databases.push(db);
  if (sql) await adminQuery(db.url, sql);
  return db.url;
}

let clean: string;
let drifted: string;
beforeAll(async () => {
  [clean, drifted] = await Promise.all([
    migratedDatabase(),
    migratedDatabase('alter table records add column junk text; drop index idx_records_record_id'),
  ]);
});
afterAll(async () => {
  await Promise.all(databases.map((db) => db.drop()));
});

// Each case is a separate child process of a few seconds, so they run side by side.
describe.concurrent('schema:validate', () => {
  test('exits 0 on a freshly migrated database', async ({ expect }) => {
    const result = await validate(clean);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toContain('entities match the migrations');
    expect(result.stdout).toContain('the migrated database matches the entities');
  });

  test('exits 1 and names every change made by hand: an added column and a dropped index', async ({ expect }) => {
    const result = await validate(drifted);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the migrated database differs from the entities');
    expect(result.stderr).toMatch(/drop column "junk"/);
    expect(result.stderr).toMatch(/create index "idx_records_record_id"/);
  });
});
