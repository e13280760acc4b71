/**
 * Where the database is: `DATABASE_URL`. Migrations prefer `DIRECT_URL`, because Neon's pooled URL
 * goes through PgBouncer in transaction mode, which breaks the session-level advisory lock the
 * migration runner takes. With neither set, the library fails with one line: it never starts a
 * server by itself (a misconfigured deploy must not "succeed" against a throwaway database). The
 * embedded server is a separate entry point, `vault-db/embedded`, for development.
 *
 * @module
 */
import pg from 'pg';
import { pgConnectionConfig, tlsSettings } from './connection-options.js';
import { ConfigurationError } from './errors.js';
import { explainTlsFailure } from './tls-failure.js';

/** Which server a URL came from, for status output. */
export type DatabaseSource = 'DATABASE_URL' | 'DIRECT_URL' | 'embedded';

/** A resolved connection target. */
export interface DatabaseTarget {
  url: string;
  source: DatabaseSource;
}

/**
 * Checks that `value` is a PostgreSQL URL and returns it, or throws a one-line
 * {@link ConfigurationError} that says what to fix.
 */
export function parseDatabaseUrl(value: string, variable: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigurationError(
      `${variable} is not a valid URL; expected postgres://user:password@host:5432/database (add ?sslmode=require for Neon).`,
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigurationError(`${variable} must start with postgres:// or postgresql://, not ${url.protocol}//.`);
  }
  if (!url.hostname) throw new ConfigurationError(`${variable} has no host name.`);
  // A bad sslmode is a configuration error too, and better found before the first connection.
  tlsSettings(value, { variable });
  return url;
}

/** The URL with its password replaced by `***`, safe to print. */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    // node-pg also takes passwords as query parameters.
    for (const key of ['password', 'sslpassword']) if (url.searchParams.has(key)) url.searchParams.set(key, '***');
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** The one line a library call prints when no URL is set. */
export const NO_DATABASE_URL =
  'No database configured: set DATABASE_URL (and DIRECT_URL, the direct non-pooled URL, for migrations) to a postgres:// URL. ' +
  'vault-db never starts a server by itself; for development, start one explicitly with startEmbeddedPostgres() from vault-db/embedded.';

/**
 * The application's database: `DATABASE_URL`.
 *
 * @throws ConfigurationError when it is unset ({@link NO_DATABASE_URL}) or malformed
 * @example
 * ```ts
 * const { url, source } = await resolveDatabaseUrl();
 * ```
 */
export async function resolveDatabaseUrl(env: NodeJS.ProcessEnv = process.env): Promise<DatabaseTarget> {
  const found = fromEnvironment(env, 'DATABASE_URL');
  if (!found) throw new ConfigurationError(NO_DATABASE_URL);
  return found;
}

/**
 * The database migrations should use: `DIRECT_URL` if set, else `DATABASE_URL`.
 *
 * @throws ConfigurationError when neither is set ({@link NO_DATABASE_URL}) or one is malformed
 */
export async function resolveMigrationUrl(env: NodeJS.ProcessEnv = process.env): Promise<DatabaseTarget> {
  return fromEnvironment(env, 'DIRECT_URL') ?? resolveDatabaseUrl(env);
}

/** The URL in `variable`, checked, or undefined when it is unset or blank. */
export function fromEnvironment(env: NodeJS.ProcessEnv, variable: 'DATABASE_URL' | 'DIRECT_URL'): DatabaseTarget | undefined {
  const value = env[variable]?.trim();
  if (!value) return undefined;
  parseDatabaseUrl(value, variable);
  return { url: value, source: variable };
}

/**
 * Connects once and runs `select version()`, turning the usual failures into one line that says
 * what to fix instead of a driver stack trace.
 *
 * @returns the server's version string
 * @throws ConfigurationError when the server can't be reached or refuses the login
 */
export async function checkDatabaseReachable(target: DatabaseTarget): Promise<string> {
  let client: pg.Client | undefined;
  try {
    // Inside the try: the driver throws a raw TypeError for URLs it can't parse (port 99999, ...).
    client = new pg.Client({ ...pgConnectionConfig(target.url, { variable: target.source }), connectionTimeoutMillis: 10_000 });
    client.on('error', () => {});
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('show server_version');
    return rows[0]?.server_version ?? 'unknown';
  } catch (error) {
    // Already one line that names the variable (a bad sslmode, an unreadable sslrootcert).
    if (error instanceof ConfigurationError) throw error;
    throw new ConfigurationError(`${describeTarget(target)} ${explainConnectError(error)}`, { cause: error });
  } finally {
    await client?.end().catch(() => {});
  }
}

function describeTarget(target: DatabaseTarget): string {
  return target.source === 'embedded'
    ? 'The embedded PostgreSQL'
    : `${target.source} (${redactUrl(target.url)})`;
}

/**
 * The rest of the one line that {@link checkDatabaseReachable} prints after naming the URL: what
 * went wrong and what to change. TLS problems each get their own line, since "SSL error" alone
 * leaves a user guessing between the URL, the CA file and the server. Exported for its unit test
 * (test/unit/connect-errors.test.ts), not from the package.
 */
export function explainConnectError(error: unknown): string {
  const e = error as { code?: string; message?: string };
  const message = e.message ?? String(error);
  const tls = explainTlsFailure(error);
  if (tls) return tls;
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'refused the connection: is the server running, and are host and port right?';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'names a host that does not resolve: check the host name.';
    case 'ETIMEDOUT':
      return 'did not answer in time: check the host, the port and any firewall.';
    case '28P01':
    case '28000':
      return 'rejected the login: check the user name and password.';
    case '3D000':
      return 'names a database that does not exist: create it or fix the database name.';
    default:
      if (message.includes('timeout')) return 'did not answer in time: check the host, the port and any firewall.';
      if (/ssl|tls|certificate/i.test(message) || e.code?.startsWith('ERR_SSL') || e.code?.startsWith('ERR_TLS')) {
        return `failed the TLS handshake (${message}): check sslmode and sslrootcert in the URL.`;
      }
      return `could not be used: ${message}.`;
  }
}
