/**
 * `npm run db:migrate` (the MikroORM CLI) and `runMigrations()` take the same lock: two CLI runs
 * and a `runMigrations()` started together on an empty database all succeed, and each migration
 * is applied exactly once. To make them really race, the test holds the migration lock itself
 * until all three are waiting for it.
 */
import { readdirSync } from 'node:fs';
import { afterEach, expect, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { MIGRATIONS_DIR } from '../src/config.js';
import { MIGRATION_LOCK_KEY, runMigrations } from '../src/migrate.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const MIGRATIONS = readdirSync(MIGRATIONS_DIR).filter((f) => /^Migration\d+\.ts$/.test(f)).map((f) => f.replace(/\.ts$/, '')).sort();

let db: TestDatabase | undefined;
afterEach(async () => { await db?.drop(); });

test('two concurrent npm run db:migrate and a concurrent runMigrations() on an empty database: all succeed, each migration applied once', async () => {
  db = await createTestDatabase({ migrate: false });
  const gate = new pg.Client(pgConnectionConfig(db.url));
  await gate.connect();
  try {
    await gate.query('select pg_advisory_lock($1::int8)', [MIGRATION_LOCK_KEY]);
    const lines: string[] = [];
    const runs = Promise.all([
      runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: db.url }, 120_000),
      runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: db.url }, 120_000),
      runMigrations({ url: db.url, log: (l) => lines.push(l) }),
    ]);
    // All three queue on the lock the gate holds (the CLI's without the gate would take none).
    for (let waiting = 0; waiting < 3; ) {
      const { rows } = await gate.query<{ n: number }>(
        `select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`,
      );
      waiting = rows[0]?.n ?? 0;
      if (waiting < 3) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await gate.query('select pg_advisory_unlock($1::int8)', [MIGRATION_LOCK_KEY]);
    const [cliA, cliB, report] = await runs;

    expect(cliA.code, cliA.stderr).toBe(0);
    expect(cliB.code, cliB.stderr).toBe(0);
    const appliedByCli = [cliA, cliB].flatMap((r) => r.stdout.split('\n').filter((l) => l.startsWith('migrated ')).map((l) => l.slice('migrated '.length)));
    const applied = [...appliedByCli, ...report.applied].sort();
    expect(applied).toEqual(MIGRATIONS);
    expect(lines).toEqual(report.applied.map((name) => `migrated ${name}`));
    const { rows } = await gate.query<{ name: string }>('select name from vault_db_migrations order by id');
    expect(rows.map((r) => r.name)).toEqual(MIGRATIONS);
  } finally {
    await gate.end();
  }
}, 180_000);
