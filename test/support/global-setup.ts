/**
 * Starts the embedded PostgreSQL once for the whole run when `DATABASE_URL` is unset, and tells
 * the test files where the server is. Each file then creates and drops its own database.
 */
import type { TestProject } from 'vitest/node';
import { checkDatabaseReachable, resolveDatabaseUrl } from '../../src/database-url.js';
import { startEmbeddedPostgres } from '../../src/embedded-postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    serverUrl: string;
    serverSource: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const target = await resolveDatabaseUrl();
  const version = await checkDatabaseReachable(target);
  console.log(`tests use ${target.source === 'embedded' ? 'the embedded PostgreSQL' : 'DATABASE_URL'} (PostgreSQL ${version})`);
  project.provide('serverUrl', target.url);
  project.provide('serverSource', target.source);
  return async () => {
    if (target.source === 'embedded') await (await startEmbeddedPostgres()).stop();
  };
}
