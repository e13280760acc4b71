/**
 * The one place where a `postgres://` URL becomes connection options: for every `pg.Client` and
 * `pg.Pool` the package, its scripts and its tests open, and for MikroORM's `driverOptions`.
 *
 * Why: MikroORM 6 reads only host, port, user, password and database from `clientUrl`, so
 * `sslmode` and `sslrootcert` never reached the ORM's connections, which then went out as plain
 * TCP while a `pg.Client` on the same URL used TLS. And node-pg on its own reads
 * `sslmode=require` as `verify-full` (printing a multi-line warning on each command), which is not
 * what libpq, psql or Neon's documentation mean by it. Here the URL is parsed once, by node-pg's
 * own parser (`pg-connection-string`) in its libpq-compatible mode, and the result is handed to
 * every connection.
 *
 * `sslmode` (in the URL, else `PGSSLMODE`), as libpq defines it:
 *
 * | sslmode | encrypted | certificate checked against | host name checked |
 * |---|---|---|---|
 * | (none) | no, as node-pg | - | - |
 * | `disable` | no | - | - |
 * | `require` | yes | nothing; with `sslrootcert`, that CA (as libpq) | no |
 * | `verify-ca` | yes | `sslrootcert` (required) | no |
 * | `verify-full` | yes | `sslrootcert`, else Node's bundled CAs (+ `NODE_EXTRA_CA_CERTS`) | yes |
 *
 * `allow` and `prefer` are refused: they fall back to an unencrypted connection when the server
 * (or anyone in between) answers that it has no TLS. Every mode that asks for TLS fails when the
 * server can't do it; nothing falls back. `sslrootcert=system` (libpq 16) means Node's bundled
 * CAs and, as in libpq, only with `verify-full`.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { parse, toClientConfig } from 'pg-connection-string';
import { ConfigurationError } from './errors.js';

/** The `sslmode` values vault-db accepts, with libpq's meanings (see the module). */
export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

/** One of {@link SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number];

/** What a URL asks for, after the environment fallbacks. */
export interface TlsSettings {
  /** The effective mode; `disable` also when none was given (node-pg's default: no TLS). */
  sslmode: SslMode;
  /** Where the mode came from. */
  sslmodeFrom: 'url' | 'PGSSLMODE' | 'default';
  /** The CA file the server certificate is checked against; `system` for Node's bundled CAs. */
  sslrootcert?: string;
}

/** Where to read the TLS fallbacks of libpq from, and what to call the URL in error messages. */
export interface ConnectionOptionsInput {
  /** Environment for `PGSSLMODE` and `PGSSLROOTCERT` (used only when the URL has no value). Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The URL's name in error messages, e.g. `DATABASE_URL`. Default: `the database URL`. */
  variable?: string;
}

/** URL parameters that only steer TLS here; they are consumed, not passed on to the server. */
const TLS_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat', 'sslnegotiation'] as const;

/**
 * Reads the TLS settings of a URL, falling back to `PGSSLMODE`/`PGSSLROOTCERT` as libpq does.
 *
 * @throws ConfigurationError for an unknown, or downgradable, `sslmode`
 * @example
 * ```ts
 * tlsSettings('postgres://u@h/db?sslmode=verify-full').sslmode; // 'verify-full'
 * ```
 */
export function tlsSettings(url: string, input: ConnectionOptionsInput = {}): TlsSettings {
  const env = input.env ?? process.env;
  const variable = input.variable ?? 'the database URL';
  const params = parseUrl(url, variable).searchParams;
  const fromUrl = params.get('sslmode');
  // node-pg's own `ssl=true|false` stands for verify-full and disable when no sslmode is given.
  const legacy = params.get('ssl');
  const fromLegacy = legacy === null ? null : ['true', '1'].includes(legacy) ? 'verify-full' : 'disable';
  const fromEnv = fromUrl === null && legacy === null ? nonEmpty(env.PGSSLMODE) : undefined;
  const raw = fromUrl ?? fromLegacy ?? fromEnv ?? 'disable';
  // Names the setting in error messages (only ever a non-default one).
  const source = fromUrl !== null ? `sslmode=${raw} in ${variable}` : fromEnv ? `PGSSLMODE=${raw}` : `ssl=${String(legacy)} in ${variable}`;
  if (raw === 'prefer' || raw === 'allow') {
    throw new ConfigurationError(
      `${source} would fall back to an unencrypted connection when the server (or anyone in between) says it has no TLS; use sslmode=verify-full (or require), or sslmode=disable for a server on this machine.`,
    );
  }
  if (!(SSL_MODES as readonly string[]).includes(raw)) {
    throw new ConfigurationError(`${source} is not a TLS mode vault-db knows; use one of ${SSL_MODES.join(', ')}.`);
  }
  const sslmode = raw as SslMode;
  const sslrootcert = params.get('sslrootcert') ?? nonEmpty(env.PGSSLROOTCERT);
  if (sslrootcert === 'system' && sslmode !== 'verify-full') {
    throw new ConfigurationError(`sslrootcert=system needs sslmode=verify-full (as in libpq); ${source} would not check the server's name.`);
  }
  if (sslmode === 'verify-ca' && !sslrootcert) {
    throw new ConfigurationError(
      `${source} needs sslrootcert=<path of the CA certificate> in ${variable}: checking a certificate against public CAs without checking the host name would accept anyone's certificate. Or use sslmode=verify-full.`,
    );
  }
  return {
    sslmode,
    sslmodeFrom: fromUrl !== null || legacy !== null ? 'url' : fromEnv ? 'PGSSLMODE' : 'default',
    ...(sslmode !== 'disable' && sslrootcert ? { sslrootcert } : {}),
  };
}

/**
 * The `pg.Client`/`pg.Pool` options for a URL, with TLS as {@link tlsSettings} says. Use these,
 * never `{ connectionString }`, so every connection of the package encrypts (and verifies) alike.
 *
 * @throws ConfigurationError for a malformed URL, a bad `sslmode`, or an unreadable `sslrootcert`
 * @example
 * ```ts
 * const client = new pg.Client({ ...pgConnectionConfig(process.env.DIRECT_URL!), application_name: 'job' });
 * ```
 */
export function pgConnectionConfig(url: string, input: ConnectionOptionsInput = {}): pg.ClientConfig {
  const variable = input.variable ?? 'the database URL';
  const tls = tlsSettings(url, input);
  const parsed = parseUrl(url, variable);
  for (const key of TLS_PARAMETERS) parsed.searchParams.delete(key);
  // Files are read here, not by the parser, so an unreadable one gets a line naming it.
  const base = toClientConfig(parse(parsed.toString(), { useLibpqCompat: true }));
  const config: pg.ClientConfig = { ...base };
  config.ssl = sslOptions(tls, parseUrl(url, variable).searchParams, variable);
  return config;
}

/**
 * MikroORM's `driverOptions` for a URL: the same connection options as {@link pgConnectionConfig},
 * which knex merges over what MikroORM takes from `clientUrl`.
 *
 * @example
 * ```ts
 * defineConfig({ clientUrl: url, driverOptions: ormDriverOptions(url) });
 * ```
 */
export function ormDriverOptions(url: string, input: ConnectionOptionsInput = {}): { connection: pg.ClientConfig } {
  return { connection: pgConnectionConfig(url, input) };
}

/** Node's TLS options for libpq's modes (the libpq-compatible branch of pg-connection-string, plus file errors). */
function sslOptions(tls: TlsSettings, params: URLSearchParams, variable: string): pg.ClientConfig['ssl'] {
  if (tls.sslmode === 'disable') return false;
  const ca = tls.sslrootcert && tls.sslrootcert !== 'system' ? readPem(tls.sslrootcert, 'sslrootcert', variable) : undefined;
  const cert = params.get('sslcert') ?? undefined;
  const key = params.get('sslkey') ?? undefined;
  const options: NonNullable<Exclude<pg.ClientConfig['ssl'], boolean>> = {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert: readPem(cert, 'sslcert', variable) } : {}),
    ...(key ? { key: readPem(key, 'sslkey', variable) } : {}),
  };
  switch (tls.sslmode) {
    case 'require':
      // libpq: with a root certificate, require checks the chain (as verify-ca); without, nothing.
      return ca ? { ...options, checkServerIdentity: () => undefined } : { ...options, rejectUnauthorized: false };
    case 'verify-ca':
      return { ...options, checkServerIdentity: () => undefined };
    case 'verify-full':
      return options;
  }
}

function readPem(file: string, parameter: string, variable: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'unreadable';
    throw new ConfigurationError(`${parameter}=${file} in ${variable} can't be read (${code}): check the path and that this user may read it.`, { cause: error });
  }
}

function parseUrl(url: string, variable: string): URL {
  try {
    return new URL(url);
  } catch {
    // The value is not echoed: it may hold a password.
    throw new ConfigurationError(`${variable} is not a valid URL; expected postgres://user:password@host:5432/database?sslmode=verify-full.`);
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}
