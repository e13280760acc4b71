/**
 * Tells the test files where the server is, and starts the embedded PostgreSQL once for the whole
 * run when no URL is set. Each file then creates and drops its own database.
 *
 * Two URLs, as in production: `DIRECT_URL` logs straight in to PostgreSQL and is what tests use
 * to create and drop databases and roles, and for anything that needs a session of its own
 * (advisory locks, killing a backend by pid); `DATABASE_URL` is the pooled one (PgBouncer in
 * transaction mode on the Neon-shaped stack) and is what the ORM of a test database gets. With
 * only one of them set, or none (the embedded server), both are the same.
 */
import type { TestProject } from 'vitest/node';
import { checkDatabaseReachable, parseDatabaseUrl, resolveDatabaseUrl, type DatabaseTarget } from '../../src/database-url.js';
import { startEmbeddedPostgres } from '../../src/embedded-postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The direct URL (a role that may create databases and roles), on the server's maintenance database. */
    serverUrl: string;
    /** The URL the application would use for the same server: the pooler's, when there is one. */
    pooledServerUrl: string;
    serverSource: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const directFromEnv = process.env.DIRECT_URL?.trim();
  if (directFromEnv) parseDatabaseUrl(directFromEnv, 'DIRECT_URL');
  const onlyDirect = directFromEnv && !process.env.DATABASE_URL?.trim();
  const pooled: DatabaseTarget = onlyDirect ? { url: directFromEnv, source: 'DIRECT_URL' } : await resolveDatabaseUrl();
  const direct: DatabaseTarget = directFromEnv && !onlyDirect ? { url: directFromEnv, source: 'DIRECT_URL' } : pooled;
  const version = await checkDatabaseReachable(direct);
  if (direct !== pooled) await checkDatabaseReachable(pooled);
  console.log(
    direct === pooled
      ? `tests use ${pooled.source === 'embedded' ? 'the embedded PostgreSQL' : pooled.source} (PostgreSQL ${version})`
      : `tests use DIRECT_URL to set up and DATABASE_URL for the ORM (PostgreSQL ${version})`,
  );
  project.provide('serverUrl', direct.url);
  project.provide('pooledServerUrl', pooled.url);
  project.provide('serverSource', pooled.source);
  return async () => {
    if (pooled.source === 'embedded') await (await startEmbeddedPostgres()).stop();
  };
}
