/**
 * createConfig deep-merges an app's overrides over vault-db's settings (arrays replaced, the
 * connection hook composed), and withVaultDb adds vault-db to an app's own configuration without
 * taking over the app's settings. No database: these are the options MikroORM would get.
 */
import { defineConfig, PostgreSqlDriver } from '@mikro-orm/postgresql';
import { describe, expect, test } from 'vitest';
import { createConfig, MIGRATIONS_TABLE, VAULT_DB_TABLES, vaultDbConfig, withVaultDb } from '../../src/config.js';
import { entities } from '../../src/entities/index.js';
import { migrationsList } from '../../src/migrations/index.js';
import { VaultDbDriver } from '../../src/records-driver.js';

const URL = 'postgres://u:p@127.0.0.1:5432/app';
type Hook = (conn: unknown, done: (err: Error | null, conn: unknown) => void) => void;

/** Calls a pool's afterCreate on a fake connection and returns what the hooks did. */
function runHook(hook: unknown): { calls: string[]; marked: boolean } {
  const calls: string[] = [];
  const listeners: ((msg: { severity?: string }) => void)[] = [];
  const conn = { connection: { on: (_event: string, cb: (msg: { severity?: string }) => void) => listeners.push(cb) }, __knex__disposed: undefined as unknown };
  (hook as Hook)(conn, (err) => calls.push(err ? 'error' : 'done'));
  for (const listener of listeners) listener({ severity: 'FATAL' });
  return { calls, marked: conn.__knex__disposed !== undefined };
}

describe('createConfig', () => {
  test('a migrations override keeps the other migration settings', () => {
    const config = createConfig(URL, { migrations: { transactional: true, silent: false } });
    expect(config.migrations).toMatchObject({ tableName: MIGRATIONS_TABLE, silent: false, transactional: true, allOrNothing: false, snapshot: false });
    expect(config.migrations?.migrationsList?.map((m) => (typeof m === 'function' ? m.name : m.name))).toEqual(migrationsList.map((m) => m.name));
  });

  test('arrays are replaced, and vault-db keeps its own entities and skipped tables', () => {
    class Other {}
    const config = createConfig(URL, { entities: [Other], schemaGenerator: { skipTables: ['legacy'] } });
    expect(config.entities).toEqual([Other, ...entities]);
    // Its own ORM diffs its own tables: only the tables that are no entity are skipped.
    expect(config.schemaGenerator?.skipTables).toEqual(['legacy', 'vault_db_claim_key', MIGRATIONS_TABLE]);
  });

  test("an app's pool.afterCreate runs after vault-db's hook, which still marks a killed connection", () => {
    const appHook: Hook = (conn, done) => done(null, conn);
    let appRan = false;
    const config = createConfig(URL, { pool: { max: 3, afterCreate: ((conn, done) => { appRan = true; appHook(conn, done); }) as Hook } });
    expect(config.pool).toMatchObject({ min: 0, max: 3 });
    const { calls, marked } = runHook(config.pool?.afterCreate);
    expect(appRan).toBe(true);
    expect(calls).toEqual(['done']);
    expect(marked).toBe(true);
  });

  test('without an app hook, the connection is handed on once', () => {
    expect(runHook(createConfig(URL).pool?.afterCreate)).toEqual({ calls: ['done'], marked: true });
  });

  test('a driver override is kept; the default is VaultDbDriver', () => {
    expect(createConfig(URL).driver).toBe(VaultDbDriver);
    expect(createConfig(URL, { driver: PostgreSqlDriver }).driver).toBe(PostgreSqlDriver);
  });
});

describe('withVaultDb', () => {
  test("adds vault-db's entities, driver and skipped tables, and imposes none of createConfig's defaults", () => {
    class Bookmark {}
    const app = defineConfig({ clientUrl: URL, entities: [Bookmark], schemaGenerator: { skipTables: ['audit'] }, batchSize: 50 });
    const config = withVaultDb(app);
    expect(config.entities).toEqual([Bookmark, ...entities]);
    expect(config.driver).toBe(VaultDbDriver);
    expect(config.schemaGenerator?.skipTables).toEqual(['audit', ...VAULT_DB_TABLES]);
    expect(config.batchSize).toBe(50);
    for (const key of ['allowGlobalContext', 'forceUtcTimezone', 'migrations', 'extensions', 'metadataProvider'] as const) expect(config[key]).toBe(app[key]);
    expect((config.driverOptions as { connection: { host: string } }).connection.host).toBe('127.0.0.1');
  });

  test("an app's driver extending VaultDbDriver is kept", () => {
    class AppDriver extends VaultDbDriver {}
    expect(withVaultDb({ driver: AppDriver }).driver).toBe(AppDriver);
  });

  test('the fragment names the entities, the driver and the skipped tables only', () => {
    expect(Object.keys(vaultDbConfig()).sort()).toEqual(['driver', 'entities', 'schemaGenerator']);
  });
});
