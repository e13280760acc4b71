/**
 * The standalone server's configuration, read from the environment and checked whole before
 * anything starts: a bad value is one `ConfigurationError` line naming the variable.
 *
 * Without `AUTH_JWKS_URL` the server runs in local dev mode (it signs its own short-lived tokens),
 * which is only allowed on a loopback address, and never together with a JWKS URL.
 *
 * @module
 */
import { isIP } from 'node:net';
import { ConfigurationError } from '../errors.js';

/** How tokens are verified. */
export type ServeAuth =
  | { mode: 'jwks'; jwksUrl: string; issuer: string; audience: string[]; authorizedParties?: string[] }
  | { mode: 'dev' };

/** Everything `serve.ts` needs from the environment. */
export interface ServeConfig {
  port: number;
  host: string;
  auth: ServeAuth;
  corsOrigins: string[];
}

/** The port when `PORT` is unset. */
export const DEFAULT_PORT = 8787;

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/**
 * Reads the configuration.
 * @throws ConfigurationError naming the first bad variable, in one line
 */
export function readServeConfig(env: NodeJS.ProcessEnv = process.env): ServeConfig {
  const rawPort = env.PORT?.trim() || String(DEFAULT_PORT);
  if (!/^[0-9]{1,5}$/.test(rawPort) || Number(rawPort) > 65535) throw new ConfigurationError(`PORT must be an integer from 0 to 65535, not "${rawPort}".`);
  const host = env.HOST?.trim() || '127.0.0.1';
  if (host !== 'localhost' && isIP(host) === 0) throw new ConfigurationError(`HOST must be an IP address or localhost, not "${host}".`);

  const corsOrigins = list(env.CORS_ORIGINS);
  for (const origin of corsOrigins) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = null;
    }
    if (parsed === null || parsed.origin !== origin || !/^https?:$/.test(parsed.protocol)) {
      throw new ConfigurationError(`CORS_ORIGINS must be comma-separated origins like https://app.example.com (scheme, host and port only), not "${origin}".`);
    }
  }

  const jwksUrl = env.AUTH_JWKS_URL?.trim();
  const devRequested = ['1', 'true', 'yes'].includes((env.AUTH_DEV_MODE ?? '').trim().toLowerCase());
  if (jwksUrl) {
    if (devRequested) throw new ConfigurationError('AUTH_DEV_MODE and AUTH_JWKS_URL are both set; dev mode signs its own tokens and can not be combined with a JWKS.');
    let url: URL;
    try {
      url = new URL(jwksUrl);
    } catch {
      throw new ConfigurationError(`AUTH_JWKS_URL is not a URL: "${jwksUrl}".`);
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname.replace(/^\[|\]$/g, '')))) {
      throw new ConfigurationError('AUTH_JWKS_URL must be https (plain http only on a loopback address).');
    }
    const issuer = env.AUTH_ISSUER?.trim();
    if (!issuer) throw new ConfigurationError('AUTH_ISSUER is required with AUTH_JWKS_URL: tokens from any other issuer must be refused.');
    const authorizedParties = list(env.AUTH_AUTHORIZED_PARTIES);
    return {
      port: Number(rawPort),
      host,
      corsOrigins,
      auth: { mode: 'jwks', jwksUrl, issuer, audience: list(env.AUTH_AUDIENCE), ...(authorizedParties.length > 0 ? { authorizedParties } : {}) },
    };
  }
  if (env.AUTH_ISSUER?.trim() || env.AUTH_AUDIENCE?.trim()) {
    throw new ConfigurationError('AUTH_ISSUER or AUTH_AUDIENCE is set without AUTH_JWKS_URL; set AUTH_JWKS_URL too, or unset them for local dev mode.');
  }
  if (!isLoopback(host)) throw new ConfigurationError(`Local dev mode (no AUTH_JWKS_URL) binds a loopback address only, not HOST="${host}"; set AUTH_JWKS_URL to serve on other addresses.`);
  return { port: Number(rawPort), host, corsOrigins, auth: { mode: 'dev' } };
}
