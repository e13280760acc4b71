/**
 * The MikroORM configuration of vault-db, shared by the CLI (`mikro-orm.config.ts`), the
 * migration runner, the tests and applications that embed the package.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { GeneratedCacheAdapter, ReflectMetadataProvider } from '@mikro-orm/core';
import { defineConfig, type Options } from '@mikro-orm/postgresql';
import type * as Reflection from '@mikro-orm/reflection';
import { ormDriverOptions } from './connection-options.js';
import { entities } from './entities/index.js';
import { redactingLoggerFactory } from './log-redaction.js';
import { VaultDbDriver } from './records-driver.js';
import { VaultDbMigrator } from './migrations-runner/vault-db-migrator.js';

/** Folder of the migrations next to this module: `src/migrations` in development, `dist/migrations` when built. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));

/** The metadata cache `npm run build` generates next to the built modules (`dist/metadata.json`). */
export const GENERATED_METADATA = fileURLToPath(new URL('./metadata.json', import.meta.url));

/**
 * How entity metadata is found. The built package reads the cache generated at build time, so
 * production never loads ts-morph (a cold-start cost on serverless hosts); from the TypeScript
 * sources, ts-morph reflects the entities and caches the result in `.data/metadata-cache`.
 */
function metadataOptions(): Pick<Options, 'metadataProvider' | 'metadataCache'> {
  // Decided once per process: every ORM (the service's, the migration runner's) gets the same answer.
  metadata ??= findMetadata();
  return metadata;
}

let metadata: Pick<Options, 'metadataProvider' | 'metadataCache'> | undefined;

function findMetadata(): Pick<Options, 'metadataProvider' | 'metadataCache'> {
  if (existsSync(GENERATED_METADATA)) {
    const data = JSON.parse(readFileSync(GENERATED_METADATA, 'utf8')) as Record<string, unknown>;
    return { metadataProvider: ReflectMetadataProvider, metadataCache: { enabled: true, adapter: GeneratedCacheAdapter, options: { data } } };
  }
  // Loaded lazily: ts-morph is large, and the built package does not need it.
  const { TsMorphMetadataProvider } = createRequire(import.meta.url)('@mikro-orm/reflection') as typeof Reflection;
  return {
    metadataProvider: TsMorphMetadataProvider,
    metadataCache: { enabled: true, options: { cacheDir: fileURLToPath(new URL('../.data/metadata-cache', import.meta.url)) } },
  };
}

/**
 * Largest number of rows MikroORM puts in one INSERT or UPDATE statement. It is at least the
 * largest push (1,000 changes by default), so a push costs the same number of round trips at any
 * size (see the benchmark report).
 */
export const FLUSH_BATCH_SIZE = 1000;

/**
 * Builds the MikroORM options for a database URL.
 *
 * @param clientUrl a `postgres://` URL; its `sslmode`/`sslrootcert` (or `PGSSLMODE`/`PGSSLROOTCERT`)
 *   decide TLS for every connection, see {@link ormDriverOptions}
 * @param overrides any MikroORM option to change, merged last (`driverOptions.connection` is
 *   merged over the connection options taken from the URL, so `application_name` can be added)
 * @throws ConfigurationError for a malformed URL, a bad `sslmode` or an unreadable `sslrootcert`
 * @example
 * ```ts
 * const orm = await MikroORM.init(createConfig(process.env.DATABASE_URL!));
 * ```
 */
export function createConfig(clientUrl: string, overrides: Partial<Options> = {}): Options {
  // MikroORM keeps only host, port, user, password and database of `clientUrl`; TLS reaches the
  // driver only through `driverOptions`, so it is built from the URL here and merged with the
  // caller's driver options rather than replaced by them.
  const fromUrl = ormDriverOptions(clientUrl);
  const given = (overrides.driverOptions ?? {}) as { connection?: Record<string, unknown> };
  const driverOptions = { ...given, connection: { ...fromUrl.connection, ...given.connection } };
  return defineConfig({
    clientUrl,
    // MikroORM's PostgreSQL driver, with bound unnest arrays for `records` batches (see the module).
    driver: VaultDbDriver,
    entities: [...entities],
    ...metadataOptions(),
    // MikroORM's migrator with a production-safe up()/down(), so the CLI and runMigrations() take
    // the same lock and run the same way (see src/migrations-runner/vault-db-migrator.ts).
    extensions: [VaultDbMigrator],
    batchSize: FLUSH_BATCH_SIZE,
    // Entities are never loaded implicitly across requests: each service call forks its own EM.
    allowGlobalContext: false,
    forceUtcTimezone: true,
    migrations: {
      path: MIGRATIONS_DIR,
      pathTs: MIGRATIONS_DIR,
      glob: '!(*.d).{js,ts}',
      emit: 'ts',
      snapshot: true,
      snapshotName: '.snapshot-vault-db',
      tableName: 'mikro_orm_migrations',
      // One transaction per migration (VaultDbMigrator ignores allOrNothing; false says so here):
      // a long run doesn't hold its first migration's locks to the end.
      transactional: true,
      allOrNothing: false,
      dropTables: false,
      safe: false,
      // runMigrations logs each migration itself; the CLI prints its own summary.
      silent: true,
    },
    // The claim key (migration Migration20261130210000) is no entity: schema diffs must not drop it.
    schemaGenerator: { skipTables: ['vault_db_claim_key'] },
    debug: false,
    ...overrides,
    // MikroORM inlines parameters into the SQL it logs; never let ciphertext, wrapped keys or salts
    // reach the log, whichever logger the overrides choose (see src/log-redaction.ts).
    loggerFactory: redactingLoggerFactory(overrides.loggerFactory),
    driverOptions,
    pool: {
      min: 0,
      max: 10,
      ...overrides.pool,
      // A backend killed in the middle of a query answers with a FATAL error that pg hands to the
      // query; the socket closes a moment later. Mark the connection at once, so the pool never
      // hands it to the next call.
      afterCreate: (conn: { connection?: { on(event: string, cb: (msg: { severity?: string }) => void): void }; __knex__disposed?: unknown }, done: (err: Error | null, conn: unknown) => void) => {
        conn.connection?.on('errorMessage', (msg) => {
          if (msg.severity === 'FATAL' || msg.severity === 'PANIC') conn.__knex__disposed = msg;
        });
        done(null, conn);
      },
    },
  });
}
