/**
 * Starts the embedded PostgreSQL once for the whole run when `DATABASE_URL` is unset, and tells
 * the test files where the server is. Each file then creates and drops its own database.
 *
 * The embedded server is started here explicitly (never as a side effect of resolving a URL), and
 * left when the run ends: stopped if no other process (say `npm start`) still uses it.
 */
import type { TestProject } from 'vitest/node';
import { checkDatabaseReachable, resolveDatabaseUrl, type DatabaseTarget } from '../../src/database-url.js';
import { startEmbeddedPostgres } from '../../src/embedded-postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    serverUrl: string;
    serverSource: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const embedded = process.env.DATABASE_URL?.trim() ? undefined : await startEmbeddedPostgres();
  const target: DatabaseTarget = embedded ? { url: embedded.url, source: 'embedded' } : await resolveDatabaseUrl();
  const version = await checkDatabaseReachable(target);
  const where = embedded ? `the embedded PostgreSQL (${embedded.origin}, data in ${embedded.dataDir})` : 'DATABASE_URL';
  console.log(`tests use ${where} (PostgreSQL ${version})`);
  project.provide('serverUrl', target.url);
  project.provide('serverSource', target.source);
  return async () => {
    await embedded?.stop();
  };
}
