/** Small helpers to create and drop scratch databases on a server, shared by scripts, tests and benchmarks. */
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';

/** The same server URL pointing at another database. */
export function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs one statement on the server's maintenance connection (the URL's own database). */
export async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client(pgConnectionConfig(serverUrl));
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
