/**
 * No session state (#8): behind a transaction-mode pooler a session setting outlives the call
 * that made it and reaches whoever gets the server session next, so every setting the package
 * makes must be transaction-local (`SET LOCAL`, `set_config(..., true)`).
 *
 * Two checks: a scan of the package's source for a `SET` without `LOCAL` (and `set_config(...,
 * false)`), and a runtime check on a pool of exactly one connection that neither a migration run
 * nor service calls leave a session-level setting behind on it.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig } from '../src/config.js';
import type { VaultDbMigrator } from '../src/migrations-runner/vault-db-migrator.js';
import { SyncService } from '../src/sync/sync-service.js';
import { PROJECT_ROOT } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { ciphertext, envelope } from './support/fixtures.js';

/**
 * Session-level settings in SQL text: a statement (after a quote, a backtick or a semicolon)
 * starting with SET but not SET LOCAL (SET CONSTRAINTS and SET TRANSACTION are
 * transaction-scoped), RESET, and set_config with is_local false. A function's own
 * `SET search_path = ...` clause follows other words, so it is not matched. The setting's name
 * must be lower case, as GUCs are written, so prose like "set DIRECT_URL to ..." in a message is
 * not mistaken for SQL; comments are not scanned.
 */
const SESSION_SETTING = [
  /(?:[`'";]|\bexecute\s+['"`])\s*(?:set|SET)\s+(?!local\b|LOCAL\b|constraints\b|CONSTRAINTS\b|transaction\b|TRANSACTION\b)(?:(?:session|SESSION)\s+)?[a-z_"]/g,
  /(?:[`'";])\s*(?:reset|RESET)\s+[a-z_"]/g,
  /set_config\s*\([^)]*,\s*false\s*\)/gi,
];

function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|\s)\/\/.*$/gm, '$1');
}

function sessionSettings(text: string): string[] {
  const code = withoutComments(text);
  return SESSION_SETTING.flatMap((pattern) => [...code.matchAll(pattern)].map((m) => m[0].trim()));
}

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sourceFiles(full)));
    else if (/\.ts$/.test(entry.name)) out.push(full);
  }
  return out;
}

describe('the source', () => {
  test('the scanner finds session settings and lets transaction-local ones and function SET clauses pass', () => {
    expect(sessionSettings("await client.query(`set lock_timeout = ${ms}`)")).toHaveLength(1);
    expect(sessionSettings("'set names \\'utf8\\';'")).toHaveLength(1);
    expect(sessionSettings("x.query('SET SESSION statement_timeout TO 5')")).toHaveLength(1);
    expect(sessionSettings("`select 1; set app.user_id = 'u'`")).toHaveLength(1);
    expect(sessionSettings("`reset lock_timeout`")).toHaveLength(1);
    expect(sessionSettings("select set_config('app.user_id', $1, false)")).toHaveLength(1);
    expect(sessionSettings("`set local lock_timeout = '5s'`")).toEqual([]);
    expect(sessionSettings("select set_config('lock_timeout', $1, true)")).toEqual([]);
    expect(sessionSettings('`update records set version = version + 1`')).toEqual([]);
    expect(sessionSettings('`create function f() returns trigger language plpgsql\nsecurity definer set search_path = pg_catalog, pg_temp as $$`')).toEqual([]);
    expect(sessionSettings("'set transaction isolation level serializable'")).toEqual([]);
    expect(sessionSettings("`the role may not; set DIRECT_URL to the owner's URL`")).toEqual([]);
    expect(sessionSettings('/** the batch is `set col = case ... end` */')).toEqual([]);
  });

  test('src/ and the CLI config make no session-level setting', async () => {
    const files = [...(await sourceFiles(path.join(PROJECT_ROOT, 'src'))), path.join(PROJECT_ROOT, 'mikro-orm.config.ts')];
    expect(files.length).toBeGreaterThan(20);
    const found: string[] = [];
    for (const file of files) {
      for (const hit of sessionSettings(await readFile(file, 'utf8'))) found.push(`${path.relative(PROJECT_ROOT, file)}: ${hit}`);
    }
    expect(found).toEqual([]);
  });
});

describe('at run time, on a pool of one connection', () => {
  let db: TestDatabase;
  let orm: MikroORM;
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    const config = createConfig(db.url, { pool: { min: 1, max: 1 } });
    orm = await MikroORM.init({ ...config, migrations: { ...config.migrations, snapshot: false } });
  });
  afterAll(async () => {
    await orm?.close(true);
    await db?.drop();
  });

  /** The backend of the pool's one connection, and every setting made on it at session level. */
  async function sessionState(): Promise<{ pid: number; settings: string[] }> {
    const [row] = await orm.em.getConnection().execute<{ pid: number; settings: string[] }[]>(
      `select pg_backend_pid() as pid,
              array(select name || '=' || setting from pg_settings where source = 'session' order by 1)::text[] as settings`,
    );
    if (!row) throw new Error('no row');
    return row;
  }

  test('a migration run (a lock_timeout in every migration transaction) leaves none behind', async () => {
    const before = await sessionState();
    expect(before.settings).toEqual([]);
    const migrator = (orm.migrator as VaultDbMigrator).configure({ log: () => {} });
    expect((await migrator.up()).length).toBeGreaterThan(0);
    const after = await sessionState();
    // The same physical connection: the runner's session went back to the pool.
    expect(after.pid).toBe(before.pid);
    expect(after.settings).toEqual([]);
  });

  test('service calls (app.user_id and lock_timeout in every transaction) leave none behind', async () => {
    const sync = new SyncService(orm.em);
    const before = await sessionState();
    await sync.enableVault('user_session_state', envelope());
    await sync.push('user_session_state', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: ciphertext() }] });
    await sync.pull('user_session_state', { cursor: null });
    const after = await sessionState();
    expect(after.pid).toBe(before.pid);
    expect(after.settings).toEqual([]);
    const [row] = await orm.em.getConnection().execute<{ user: string | null }[]>(`select current_setting('app.user_id', true) as user`);
    expect(row?.user ?? '').toBe('');
  });
});
