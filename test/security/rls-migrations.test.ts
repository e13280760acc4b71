/**
 * The migrations of the search_path fix and the signed claims revert exactly: `down()` returns
 * the functions (bodies, settings, EXECUTE rights), policies and tables to what the migration
 * before them left, and `up()` again rebuilds the same state.
 */
import { MikroORM } from '@mikro-orm/postgresql';
import type { Migrator } from '@mikro-orm/migrations';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { createConfig, MIGRATIONS_DIR } from '../../src/config.js';
import { describeSchema } from '../support/catalog.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';

/** Every migration of the package, in the order the runner applies them. */
const MIGRATIONS = readdirSync(MIGRATIONS_DIR)
  .filter((f) => /^Migration\d+\.ts$/.test(f))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();

/** The migrations under test; the one before the first of them is the state they start from. */
const OURS = ['Migration20261130200000', 'Migration20261130210000', 'Migration20261130220000', 'Migration20261130230000'];
const BEFORE = MIGRATIONS[MIGRATIONS.indexOf(OURS[0] as string) - 1] as string;

let db: TestDatabase;
let pool: pg.Pool;
let orm: MikroORM;

/** The schema plus what describeSchema leaves out: each function's settings, definer flag and effective ACL. */
async function state(): Promise<unknown> {
  const { rows } = await pool.query(
    `select p.proname as name, p.prosecdef as definer, p.proconfig as config, p.provolatile as volatility,
            -- NULL means the default ACL; compare what it grants, not how it is written.
            array(select unnest(coalesce(p.proacl, acldefault('f', p.proowner))::text[]) order by 1) as acl
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public' order by 1`,
  );
  return { schema: await describeSchema(pool), functions: rows };
}

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  pool = testPool(db.url, 2);
  const config = createConfig(db.url, { pool: { min: 0, max: 2 } });
  // No snapshot writes: down() would otherwise rewrite the committed snapshot.
  orm = await MikroORM.init({ ...config, migrations: { ...config.migrations, snapshot: false } });
});

afterAll(async () => {
  await orm?.close(true);
  await pool?.end();
  await db?.drop();
});

it('down() of each migration restores the state before it, and up() again the state after it', async () => {
  const migrator = orm.getMigrator() as Migrator;
  await migrator.up({ to: BEFORE });
  const states = [await state()];
  for (const name of OURS) {
    await migrator.up({ to: name });
    states.push(await state());
  }
  // Guards against a vacuous comparison: each migration did change something.
  for (let i = 1; i < states.length; i++) expect(states[i]).not.toEqual(states[i - 1]);

  for (let i = OURS.length - 1; i >= 0; i--) {
    // Without options, down() reverts the last migration applied.
    expect((await migrator.down()).map((m) => m.name)).toEqual([OURS[i]]);
    expect(await state()).toEqual(states[i]);
  }
  await migrator.up({ to: OURS.at(-1) });
  // The key is new (random), but its table and everything else is as before.
  expect(await state()).toEqual(states.at(-1));
});
