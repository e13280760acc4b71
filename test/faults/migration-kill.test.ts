/**
 * A migration run killed halfway leaves the schema as it was, and the next `runMigrations()`
 * completes. Deterministic: the database is migrated to the first migration only, another session
 * holds an ACCESS EXCLUSIVE lock on `records`, so `runMigrations()` blocks inside the second
 * migration (after it created a function and a trigger on `vaults`, at the trigger on `records`);
 * its backend is terminated there. That backend also holds the migration lock (the runner holds
 * it on the session it migrates on), so the lock can't outlive the run, nor the run the lock.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { createConfig } from '../../src/config.js';
import { runMigrations } from '../../src/migrate.js';
import type { VaultDbMigrator } from '../../src/migrations-runner/vault-db-migrator.js';
import { TransientError } from '../../src/errors.js';
import { terminateBackend } from '../../soak/faults.js';
import { sleep } from '../../soak/random.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { describeError, settle } from './support.js';

let db: TestDatabase;
let inspect: pg.Client;
let all: string[] = [];

/** What the migrations create, by name: enough to tell "as it was" from "half migrated". */
async function schemaOf(client: pg.Client) {
  const q = async (sql: string) => (await client.query<{ v: string }>(sql)).rows.map((r) => r.v);
  return {
    tables: await q(`select relname as v from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and relkind = 'r' order by 1`),
    columns: await q(`select table_name || '.' || column_name || ' ' || data_type as v from information_schema.columns where table_schema = 'public' order by 1`),
    constraints: await q(`select conrelid::regclass || ' ' || conname as v from pg_constraint c join pg_namespace n on n.oid = c.connamespace where n.nspname = 'public' order by 1`),
    triggers: await q(`select tgrelid::regclass || ' ' || tgname as v from pg_trigger where not tgisinternal order by 1`),
    functions: await q(`select proname as v from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public' order by 1`),
    policies: await q(`select tablename || ' ' || policyname as v from pg_policies where schemaname = 'public' order by 1`),
    rls: await q(`select relname as v from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and relrowsecurity order by 1`),
    migrations: await q(`select name as v from vault_db_migrations order by id`),
  };
}

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  inspect = new pg.Client(pgConnectionConfig(db.url));
  await inspect.connect();
  // Apply the first migration only, with the package's migrator (the snapshot file left alone).
  const config = createConfig(db.url, { pool: { min: 0, max: 1 } });
  const orm = await MikroORM.init({ ...config, migrations: { ...config.migrations, snapshot: false } });
  try {
    const migrator = (orm.migrator as VaultDbMigrator).configure({ log: () => {} });
    all = (await migrator.getPendingMigrations()).map((m) => m.name);
    expect(all.length).toBeGreaterThanOrEqual(2);
    await migrator.up({ to: all[0] });
  } finally {
    await orm.close(true);
  }
});

afterAll(async () => {
  await inspect?.end();
  await db?.drop();
});

test('a migration run terminated halfway leaves the schema as it was; the next run completes', async () => {
  const before = await schemaOf(inspect);
  expect(before.migrations).toEqual([all[0]]);
  expect(before.tables).toEqual(expect.arrayContaining(['records', 'vaults']));
  expect(before.triggers).toEqual([]);

  const locker = new pg.Client({ ...pgConnectionConfig(db.url), application_name: 'migration-kill-locker' });
  await locker.connect();
  let lockHeld = true;
  try {
    await locker.query('begin');
    await locker.query('lock table records in access exclusive mode');
    const lockerPid = (await locker.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid;

    const run = settle(runMigrations({ url: db.url, log: () => {} }));
    // Wait until the run is blocked on our lock, inside the second migration's transaction.
    let victim: { pid: number; query: string } | undefined;
    for (let i = 0; i < 1000 && !victim; i++) {
      const { rows } = await inspect.query<{ pid: number; query: string }>(
        `select pid, query from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid() and pid <> $1 and wait_event_type = 'Lock'`,
        [lockerPid],
      );
      victim = rows[0];
      if (!victim) await sleep(10);
    }
    expect(victim, 'runMigrations never blocked on the lock of records').toBeDefined();
    expect(victim?.query).toMatch(/records/);
    // Halfway: the same transaction already created objects of the second migration.
    const { rows: inTx } = await inspect.query<{ n: string }>(
      `select count(*) as n from pg_locks l join pg_stat_activity a on a.pid = l.pid where l.pid = $1 and l.locktype = 'relation' and l.granted`,
      [victim?.pid],
    );
    expect(Number(inTx[0]?.n)).toBeGreaterThan(0);

    expect(await terminateBackend(inspect, victim?.pid as number)).toBe(true);
    const outcome = await run;
    expect(outcome.ok, 'runMigrations must fail when its connection is killed').toBe(false);
    // A TransientError naming the migration that was rolled back (the driver's 57P01 as its cause).
    if (!outcome.ok) {
      expect(outcome.error).toBeInstanceOf(TransientError);
      expect(describeError(outcome.error)).toContain(`${all[1]} failed at statement`);
      expect(describeError(outcome.error)).toContain(`nothing of ${all[1]} is applied`);
    }

    // Still holding the lock on records: nothing of the killed run is visible, nothing half-done.
    const after = await schemaOf(inspect);
    expect(after).toEqual(before);
    expect(after.triggers).toEqual([]);
    expect(after.functions).toEqual([]);
    // The runner released its advisory lock, so the next run is not blocked by a dead one.
    const { rows: advisory } = await inspect.query(`select 1 from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`);
    expect(advisory).toEqual([]);

    await locker.query('rollback');
    lockHeld = false;
  } finally {
    if (lockHeld) await locker.query('rollback').catch(() => {});
    await locker.end();
  }

  const report = await runMigrations({ url: db.url, log: () => {} });
  expect(report.previouslyApplied).toEqual([all[0]]);
  expect(report.applied).toEqual(all.slice(1));
  const done = await schemaOf(inspect);
  expect(done.migrations).toEqual(all);
  expect(done.triggers.length).toBeGreaterThan(0);
  expect(done.rls).toEqual(expect.arrayContaining(['records', 'vaults']));
  // And a third run finds nothing to do.
  expect((await runMigrations({ url: db.url, log: () => {} })).applied).toEqual([]);
});
