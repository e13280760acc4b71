/**
 * The MikroORM configuration of vault-db, in two shapes:
 * - {@link createConfig}: a complete configuration for an ORM of vault-db's own (the migration
 *   runner, the bin, the tests, an app that keeps vault-db on an ORM of its own);
 * - {@link withVaultDb} / {@link vaultDbConfig}: what an app adds to its own `defineConfig` to
 *   use vault-db's entities and `SyncService` on its ORM, without vault-db's defaults for the
 *   app's own entities.
 *
 * Nothing here is found on disk: the entities and migrations are imported modules and metadata
 * comes from the decorators' explicit types (`ReflectMetadataProvider`), so a bundled app works
 * and ts-morph is never loaded.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { ReflectMetadataProvider } from '@mikro-orm/core';
import { defineConfig, type Options } from '@mikro-orm/postgresql';
import { ormDriverOptions } from './connection-options.js';
import { entities } from './entities/index.js';
import { redactingLoggerFactory } from './log-redaction.js';
import { migrationsList } from './migrations/index.js';
import { VaultDbDriver } from './records-driver.js';
import { VaultDbMigrator } from './migrations-runner/vault-db-migrator.js';

/**
 * The source folder of the migrations, for development tools only (`npm run db:create-migration`
 * writes new migrations and the snapshot there; tests copy them). The library never reads it.
 */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));

/**
 * The package's migration journal: a table of its own, so it never mixes with an app's
 * `mikro_orm_migrations` (see src/migrations-runner/journal.ts for the one-time move).
 */
export const MIGRATIONS_TABLE = 'vault_db_migrations';

/**
 * Tables vault-db creates and migrates itself. An app that shares its ORM skips them in its own
 * schema diffs (`migration:create`, `schema:update`), so its migrations never create, change or
 * drop them; and the claim key and the journal are no entities, so even vault-db's own diffs skip them.
 */
export const VAULT_DB_TABLES = ['vaults', 'records', 'key_rotations', 'staged_records', 'vault_db_claim_key', MIGRATIONS_TABLE] as const;

/**
 * Largest number of rows MikroORM puts in one INSERT or UPDATE statement. It is at least the
 * largest push (1,000 changes by default), so a push costs the same number of round trips at any
 * size (see the benchmark report). A default of {@link createConfig} only.
 */
export const FLUSH_BATCH_SIZE = 1000;

type AfterCreate = (conn: unknown, done: (err: Error | null, conn: unknown) => void) => void;

/**
 * A backend killed in the middle of a query answers with a FATAL error that pg hands to the
 * query; the socket closes a moment later. Marking the connection at once keeps the pool from
 * handing it to the next call (knex destroys connections marked `__knex__disposed`).
 */
function markFatalConnections(conn: unknown): void {
  const c = conn as { connection?: { on(event: string, cb: (msg: { severity?: string }) => void): void }; __knex__disposed?: unknown };
  c.connection?.on('errorMessage', (msg) => {
    if (msg.severity === 'FATAL' || msg.severity === 'PANIC') c.__knex__disposed = msg;
  });
}

/** Runs vault-db's connection hook, then the app's own `afterCreate` (if any), which ends the hook. */
function composeAfterCreate(app: unknown): AfterCreate {
  return (conn, done) => {
    markFatalConnections(conn);
    if (typeof app === 'function') (app as AfterCreate)(conn, done);
    else done(null, conn);
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/**
 * Merges `override` into `base`: plain objects key by key (recursively), anything else (arrays,
 * classes, functions) replaced whole. A key set to `undefined` removes the base's value.
 */
export function deepMerge<T extends object>(base: T, override: object): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out as T;
}

/** TLS and connection settings from the URL, under the app's own `driverOptions.connection`. */
function driverOptionsFor(clientUrl: string | undefined, given: unknown): Record<string, unknown> | undefined {
  const options = (isPlainObject(given) ? given : {}) as { connection?: Record<string, unknown> };
  // MikroORM keeps only host, port, user, password and database of `clientUrl`; TLS reaches the
  // driver only through `driverOptions`, so it is built from the URL and merged under the caller's.
  if (!clientUrl) return given === undefined ? undefined : options;
  return { ...options, connection: { ...ormDriverOptions(clientUrl).connection, ...options.connection } };
}

/**
 * The part of a MikroORM configuration vault-db needs in any ORM that runs its entities and
 * `SyncService`, and nothing more:
 * - `entities`: the four entities (`Vault`, `VaultRecord`, `KeyRotation`, `StagedRecord`);
 * - `driver`: {@link VaultDbDriver}, MikroORM's PostgreSQL driver with bound `unnest` arrays for
 *   the `records` batches of a push (faster; same results);
 * - `schemaGenerator.skipTables`: {@link VAULT_DB_TABLES}, so schema diffs on this ORM leave
 *   vault-db's tables to vault-db's own migrations;
 * - `loggerFactory` (applied by {@link withVaultDb}): redacts bytea literals (ciphertext, wrapped
 *   keys, salts) from whatever MikroORM logs;
 * - `pool.afterCreate` (composed by {@link withVaultDb}): retires a connection whose backend was
 *   killed, at once.
 *
 * Metadata needs no provider of its own: every property declares its type, so MikroORM's default
 * `ReflectMetadataProvider`, or an app's `TsMorphMetadataProvider`, reads the same metadata.
 */
export function vaultDbConfig(): Pick<Options, 'entities' | 'driver' | 'schemaGenerator'> {
  return {
    entities: [...entities],
    driver: VaultDbDriver,
    schemaGenerator: { skipTables: [...VAULT_DB_TABLES] },
  };
}

/**
 * Adds vault-db to an app's own MikroORM configuration (see {@link vaultDbConfig} for what and
 * why). The app's settings stay the app's: its entities are kept (vault-db's are appended), its
 * `pool.afterCreate` still runs (after vault-db's), its logger still logs (through the redaction),
 * and its `skipTables` are kept. A custom driver of the app is kept if it extends
 * {@link VaultDbDriver}; MikroORM's plain `PostgreSqlDriver` is replaced by it.
 *
 * The app's migrations stay the app's: vault-db's migrations run through `runMigrations()` or
 * `npx vault-db migrate`, journaled in their own table.
 *
 * @example
 * ```ts
 * export default defineConfig(withVaultDb({ clientUrl: process.env.DATABASE_URL, entities: [Bookmark] }));
 * ```
 */
export function withVaultDb(appConfig: Options): Options {
  const appDriver = appConfig.driver as unknown;
  const keepDriver = typeof appDriver === 'function' && (appDriver === VaultDbDriver || appDriver.prototype instanceof VaultDbDriver);
  return compose(appConfig, keepDriver ? (appDriver as Options['driver']) : VaultDbDriver, VAULT_DB_TABLES);
}

/** Tables of vault-db that are no entity: even vault-db's own schema diffs must leave them alone. */
const NON_ENTITY_TABLES = ['vault_db_claim_key', MIGRATIONS_TABLE] as const;

/** Adds vault-db's entities, hooks and skipped tables to `config` (see {@link withVaultDb}). */
function compose(config: Options, driver: Options['driver'], skipTables: readonly string[]): Options {
  const appEntities = (config.entities ?? []) as unknown[];
  const skip = [...(config.schemaGenerator?.skipTables ?? []), ...skipTables];
  const driverOptions = driverOptionsFor(config.clientUrl, config.driverOptions);
  return {
    ...config,
    entities: [...appEntities, ...entities.filter((e) => !appEntities.includes(e))] as Options['entities'],
    driver,
    schemaGenerator: { ...config.schemaGenerator, skipTables: [...new Set(skip)] },
    loggerFactory: redactingLoggerFactory(config.loggerFactory),
    ...(driverOptions ? { driverOptions } : {}),
    pool: { ...config.pool, afterCreate: composeAfterCreate(config.pool?.afterCreate) },
  } as Options;
}

/**
 * Builds the MikroORM options of an ORM of vault-db's own for a database URL: what
 * {@link withVaultDb} adds (except that only the claim key and the journal are skipped in schema
 * diffs: this ORM's diffs are about vault-db's own tables), plus these defaults, each replaceable
 * through `overrides`:
 * - `migrations`: vault-db's migrations as imported modules (`migrationsList`, nothing read from
 *   a folder), journaled in {@link MIGRATIONS_TABLE}, one transaction per migration, no snapshot
 *   (the snapshot is a development file); run by {@link VaultDbMigrator} (`extensions`);
 * - `batchSize: 1000`: one INSERT/UPDATE per push (see {@link FLUSH_BATCH_SIZE});
 * - `allowGlobalContext: false`: each service call forks its own EntityManager, so the global one
 *   must never be used by accident; `forceUtcTimezone: true`;
 * - `pool: { min: 0, max: 10 }`; `debug: false`.
 *
 * @param clientUrl a `postgres://` URL; its `sslmode`/`sslrootcert` (or `PGSSLMODE`/`PGSSLROOTCERT`)
 *   decide TLS for every connection, see {@link ormDriverOptions}
 * @param overrides any MikroORM option, deep-merged over the above (plain objects key by key,
 *   arrays replaced); `pool.afterCreate` runs after vault-db's hook, `loggerFactory` behind the
 *   redaction, `driverOptions.connection` over the URL's
 * @throws ConfigurationError for a malformed URL, a bad `sslmode` or an unreadable `sslrootcert`
 * @example
 * ```ts
 * const orm = await MikroORM.init(createConfig(process.env.DATABASE_URL!, { migrations: { transactional: true } }));
 * ```
 */
export function createConfig(clientUrl: string, overrides: Partial<Options> = {}): Options {
  const defaults = {
    // vault-db's own ORM diffs its own tables: only the non-entity ones are skipped (in compose).
    entities: [...entities],
    clientUrl,
    metadataProvider: ReflectMetadataProvider,
    // Nothing to cache: reading the decorators is cheap, and a cache would be a file to find.
    metadataCache: { enabled: false },
    extensions: [VaultDbMigrator],
    batchSize: FLUSH_BATCH_SIZE,
    allowGlobalContext: false,
    // Dates are written in UTC; vault-db's own columns are timestamptz, so this is belt and braces.
    forceUtcTimezone: true,
    migrations: {
      migrationsList: [...migrationsList],
      tableName: MIGRATIONS_TABLE,
      // Only for `migration:create` in this repository (mikro-orm.config.ts points them at src/).
      emit: 'ts',
      snapshot: false,
      snapshotName: '.snapshot-vault-db',
      // One transaction per migration (VaultDbMigrator ignores allOrNothing; false says so here):
      // a long run doesn't hold its first migration's locks to the end.
      transactional: true,
      allOrNothing: false,
      dropTables: false,
      safe: false,
      // runMigrations logs each migration itself; the CLI prints its own summary.
      silent: true,
    },
    debug: false,
    pool: { min: 0, max: 10 },
  } satisfies Partial<Options>;
  const { driver, ...rest } = deepMerge(defaults as Partial<Options>, overrides);
  // The claim key and the journal are skipped; the entities' tables are what vault-db's diffs are about.
  return defineConfig(compose({ ...rest, clientUrl: rest.clientUrl ?? clientUrl } as Options, driver ?? VaultDbDriver, NON_ENTITY_TABLES));
}
