/**
 * Tells the test files where the server is, and starts the embedded PostgreSQL once for the whole
 * run when no URL is set. Each file then creates and drops its own database.
 *
 * Two URLs, as in production: `DIRECT_URL` logs straight in to PostgreSQL and is what tests use
 * to create and drop databases and roles, and for anything that needs a session of its own
 * (advisory locks, killing a backend by pid); `DATABASE_URL` is the pooled one (PgBouncer in
 * transaction mode on the Neon-shaped stack) and is what the ORM of a test database gets. With
 * only one of them set, both are the same.
 *
 * It also makes the run's migrated template, which every migrated test database is cloned from
 * (template-database.ts), and drops it when the run ends.
 *
 * The embedded server is started here explicitly (never as a side effect of resolving a URL), and
 * left when the run ends: stopped if no other process (say `npm start`) still uses it.
 */
import type { TestProject } from 'vitest/node';
import { checkDatabaseReachable, parseDatabaseUrl, type DatabaseTarget } from '../../src/database-url.js';
import { startEmbeddedPostgres } from '../../src/embedded-postgres.js';
import { createTemplateDatabase } from './template-database.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The direct URL (a role that may create databases and roles), on the server's maintenance database. */
    serverUrl: string;
    /** The URL the application would use for the same server: the pooler's, when there is one. */
    pooledServerUrl: string;
    serverSource: string;
    /** The migrated database that test databases are cloned from. */
    templateDatabase: string;
  }
}

function fromEnv(variable: 'DATABASE_URL' | 'DIRECT_URL'): DatabaseTarget | undefined {
  const url = process.env[variable]?.trim();
  if (!url) return undefined;
  parseDatabaseUrl(url, variable);
  return { url, source: variable };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pooledFromEnv = fromEnv('DATABASE_URL');
  const directFromEnv = fromEnv('DIRECT_URL');
  const embedded = pooledFromEnv || directFromEnv ? undefined : await startEmbeddedPostgres();
  const pooled: DatabaseTarget = embedded ? { url: embedded.url, source: 'embedded' } : ((pooledFromEnv ?? directFromEnv) as DatabaseTarget);
  const direct: DatabaseTarget = directFromEnv ?? pooled;
  const version = await checkDatabaseReachable(direct);
  if (direct !== pooled) await checkDatabaseReachable(pooled);
  const where = embedded ? `the embedded PostgreSQL (${embedded.origin}, data in ${embedded.dataDir})` : pooled.source;
  console.log(
    direct === pooled
      ? `tests use ${where} (PostgreSQL ${version})`
      : `tests use DIRECT_URL to set up and DATABASE_URL for the ORM (PostgreSQL ${version})`,
  );
  project.provide('serverUrl', direct.url);
  project.provide('pooledServerUrl', pooled.url);
  project.provide('serverSource', pooled.source);
  const template = await createTemplateDatabase(direct.url);
  project.provide('templateDatabase', template.name);
  return async () => {
    await template.drop();
    await embedded?.stop();
  };
}
