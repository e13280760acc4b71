/**
 * The migration lock can't be had through a transaction-mode pooler, and can't be lost: the
 * runner refuses a URL declared pooled, detects a real PgBouncer in transaction mode without
 * looking at host names, and writes a migration's journal row only in a transaction whose own
 * backend holds the lock (shown by a migration that gives the lock away: it is rolled back).
 */
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { MigrationRefusedError, MIGRATION_LOCK_KEY, runMigrations } from '../src/migrate.js';
import { pooledDeclaration } from '../src/migrations-runner/pooler.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { copyMigrations, ormWithMigrations, type MigrationFolder } from './support/migration-fixtures.js';
import { existingPooler, findPgBouncer, startPgBouncer, type PgBouncer } from './support/pgbouncer.js';
import { rejectionOf } from './support/rejection.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

async function empty(): Promise<TestDatabase> {
  const db = await createTestDatabase({ migrate: false });
  cleanups.push(() => db.drop());
  return db;
}

/** Whether the database has a migration journal, and what it lists. */
async function journalOf(url: string): Promise<string[] | null> {
  const client = new pg.Client(pgConnectionConfig(url));
  await client.connect();
  try {
    const { rows } = await client.query<{ present: boolean }>(`select to_regclass('public.vault_db_migrations') is not null as present`);
    if (!rows[0]?.present) return null;
    return (await client.query<{ name: string }>('select name from vault_db_migrations order by id')).rows.map((r) => r.name);
  } finally {
    await client.end();
  }
}

async function refusal(promise: Promise<unknown>): Promise<MigrationRefusedError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(MigrationRefusedError);
  return error as MigrationRefusedError;
}

describe('a URL declared pooled', () => {
  test('pooledDeclaration: the option, DATABASE_URL_POOLED for DATABASE_URL, and Neon\'s -pooler host name', () => {
    const url = 'postgres://u@db.example.com/app';
    expect(pooledDeclaration(url, true, {})).toMatch(/declared pooled/);
    expect(pooledDeclaration(url, undefined, { DATABASE_URL: url, DATABASE_URL_POOLED: '1' })).toMatch(/DATABASE_URL is declared pooled/);
    // The declaration is about DATABASE_URL: a different (direct) URL is not covered by it.
    expect(pooledDeclaration('postgres://u@direct.example.com/app', undefined, { DATABASE_URL: url, DATABASE_URL_POOLED: '1' })).toBeNull();
    expect(pooledDeclaration('postgres://u:p@ep-cool-fog-123456-pooler.eu-central-1.aws.neon.tech/app?sslmode=require', undefined, {})).toMatch(/Neon pooler endpoint/);
    expect(pooledDeclaration('postgres://u:p@ep-cool-fog-123456.eu-central-1.aws.neon.tech/app', undefined, {})).toBeNull();
    expect(pooledDeclaration(url, false, { DATABASE_URL: url, DATABASE_URL_POOLED: '1' })).toBeNull();
    expect(pooledDeclaration(url, undefined, { DATABASE_URL: url, DATABASE_URL_POOLED: '1', DIRECT_URL: url })).toBeNull();
    expect(pooledDeclaration(url, undefined, {})).toBeNull();
  });

  test('runMigrations refuses it before touching the database', async () => {
    const db = await empty();
    const error = await refusal(runMigrations({ url: db.url, pooled: true, log: () => {} }));
    expect(error).toMatchObject({ code: 'migration_refused', reason: 'pooled_url' });
    expect(error.message).toMatch(/Refusing to migrate through .*: declared pooled .*set DIRECT_URL to the direct \(non-pooled\) connection string/);
    expect(await journalOf(db.url)).toBeNull();
  });

  test('npm run db:migrate refuses DATABASE_URL declared pooled in one line, and migrates through DIRECT_URL when it is set', async () => {
    const db = await empty();
    const refused = await runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: db.url, DATABASE_URL_POOLED: '1' }, 120_000);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^vault-db: Refusing to migrate through .*DATABASE_URL is declared pooled \(DATABASE_URL_POOLED\)/)]);
    expect(await journalOf(db.url)).toBeNull();

    // The direct URL of the same database (another spelling, as Neon's differ by host name).
    const directUrl = db.url.replace(/^postgres:/, 'postgresql:');
    const direct = await runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: db.url, DATABASE_URL_POOLED: '1', DIRECT_URL: directUrl }, 120_000);
    expect(direct.code, direct.stderr).toBe(0);
    expect((await journalOf(db.url))?.length).toBeGreaterThan(0);
  });
});

const pgbouncer = findPgBouncer();
// On the Neon-shaped stack the suite's pooled URL is a real PgBouncer in transaction mode already.
const stackPooler = inject('pooledServerUrl') !== inject('serverUrl');

describe.skipIf(!pgbouncer && !stackPooler)('a real PgBouncer in transaction mode, not declared', () => {
  let bouncer: PgBouncer;
  beforeAll(async () => {
    bouncer = stackPooler ? existingPooler(inject('pooledServerUrl')) : await startPgBouncer(pgbouncer as string, inject('serverUrl'));
  });
  afterAll(async () => { await bouncer?.stop(); });

  test('the pooler really pools: two statements of one client can run on different server sessions', async () => {
    // Guards the tests below: a PgBouncer in session mode would make them vacuous.
    const db = await empty();
    const a = new pg.Client(pgConnectionConfig(bouncer.through(db.url)));
    const b = new pg.Client(pgConnectionConfig(bouncer.through(db.url)));
    await Promise.all([a.connect(), b.connect()]);
    try {
      await a.query('select pg_advisory_lock(42)');
      // On a direct server, b could never take a lock a's session holds.
      const { rows } = await b.query<{ ok: boolean }>('select pg_try_advisory_lock(42) as ok');
      expect(rows[0]?.ok).toBe(true);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('runMigrations detects it and refuses; nothing is migrated', async () => {
    const db = await empty();
    const error = await refusal(runMigrations({ url: bouncer.through(db.url), log: () => {} }));
    expect(error.reason).toBe('pooled_url');
    expect(error.message).toMatch(/the connection behaves like a transaction-mode pooler/);
    expect(await journalOf(db.url)).toBeNull();
  });

  test('npm run db:migrate detects it and refuses in one line', async () => {
    const db = await empty();
    const result = await runCli('npm', ['run', '-s', 'db:migrate'], { DATABASE_URL: bouncer.through(db.url) }, 120_000);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^vault-db: Refusing to migrate through .*behaves like a transaction-mode pooler/)]);
    expect(await journalOf(db.url)).toBeNull();
  });
});

describe('fail closed', () => {
  let folder: MigrationFolder;
  beforeAll(async () => {
    folder = await copyMigrations();
    // A migration that gives the migration lock away halfway, as a lost lock would look.
    await folder.write(
      'Migration20991231000010',
      `import { Migration } from '@mikro-orm/migrations';
export class Migration20991231000010 extends Migration {
  override async up(): Promise<void> {
    this.addSql('select pg_advisory_unlock(${MIGRATION_LOCK_KEY});');
    this.addSql('create table written_without_the_lock (x int);');
  }
  override async down(): Promise<void> { this.addSql('drop table written_without_the_lock;'); }
}
`,
    );
  });
  afterAll(async () => { await folder?.remove(); });

  test('a migration whose transaction no longer holds the lock is rolled back and not recorded', async () => {
    const db = await empty();
    const real = (await folder.names()).filter((n) => n !== 'Migration20991231000010');
    const { orm, migrator } = await ormWithMigrations(db.url, folder.dir);
    cleanups.push(() => orm.close(true));
    const error = await refusal(migrator.up());
    expect(error).toMatchObject({ reason: 'lock_not_held', migrations: ['Migration20991231000010'] });
    expect(await journalOf(db.url)).toEqual(real);
    const client = new pg.Client(pgConnectionConfig(db.url));
    await client.connect();
    try {
      const { rows } = await client.query(`select to_regclass('public.written_without_the_lock') as t`);
      expect(rows).toEqual([{ t: null }]);
      // And the lock is not left behind: nobody holds it any more.
      const held = await client.query(`select 1 from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`);
      expect(held.rows).toEqual([]);
    } finally {
      await client.end();
    }
  });
});
