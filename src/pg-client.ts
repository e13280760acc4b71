/**
 * The one place where vault-db's own tools (the schema check, `npm run walkthrough`) open a plain `pg`
 * connection from a URL, so connection options (TLS from the URL, timeouts) apply to all of them
 * alike. The ORM's connections get theirs from `createConfig`.
 *
 * @module
 */
import pg from 'pg';
import { pgConnectionConfig } from './connection-options.js';

/** Opens a `pg.Client` on `url`; the caller ends it. Errors on the idle socket are ignored (the next query reports them). */
export async function connectClient(url: string, options: { applicationName?: string } = {}): Promise<pg.Client> {
  const client = new pg.Client({ ...pgConnectionConfig(url), connectionTimeoutMillis: 10_000, application_name: options.applicationName });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  return client;
}

/** Runs `work` with a client on `url` and ends the client afterwards. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>, options: { applicationName?: string } = {}): Promise<T> {
  const client = await connectClient(url, options);
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The same server URL pointing at another database. */
export function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}
