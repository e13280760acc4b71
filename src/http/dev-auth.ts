/**
 * Local dev mode's tokens: a key pair generated at start (never stored), an authenticator that
 * accepts only tokens it signed, and `POST /dev/token`, which signs a ten-minute token for a user
 * name. Anyone who can reach the port can be anyone: that is why dev mode binds loopback only.
 *
 * @module
 */
import { Hono } from 'hono';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createJwtAuth, type Authenticator } from './auth.js';
import { HttpError, toErrorResponse } from './http-errors.js';

const ISSUER = 'vault-db-dev';
/** Lifetime of a dev token, in seconds. */
export const DEV_TOKEN_SECONDS = 600;
/** Said on every start and in every token response. */
export const DEV_MODE_WARNING = 'LOCAL DEV MODE: no identity provider; this server signs tokens for any user name asked for. Loopback only; never expose it.';

/** The dev-mode authenticator and the route that hands out tokens. */
export interface DevAuth {
  auth: Authenticator;
  /** Mount at `/`: it serves `POST /dev/token` with body `{ "user": "alice" }`. */
  routes: Hono;
  /** Signs a token for `user` directly (tests, scripts). */
  tokenFor(user: string): Promise<string>;
}

/** Creates the key pair and the dev-mode authenticator. */
export async function createDevAuth(): Promise<DevAuth> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'dev', alg: 'ES256' };
  const auth = createJwtAuth({ jwks: createLocalJWKSet({ keys: [jwk] }), issuer: ISSUER, audience: [ISSUER] });
  const tokenFor = (user: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'dev' })
      .setIssuer(ISSUER)
      .setAudience(ISSUER)
      .setSubject(`dev:${user}`)
      .setIssuedAt()
      .setExpirationTime(`${DEV_TOKEN_SECONDS}s`)
      .sign(privateKey);
  const routes = new Hono();
  routes.post('/dev/token', async (c) => {
    let user: unknown;
    try {
      user = ((await c.req.json()) as { user?: unknown }).user;
    } catch {
      user = undefined;
    }
    if (typeof user !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(user)) {
      const { status, body } = toErrorResponse(new HttpError(400, 'validation_failed', 'Body must be { "user": "<1 to 64 of A-Z a-z 0-9 _ . ->" }.', [{ path: 'user', rule: 'must be 1 to 64 of A-Z a-z 0-9 _ . -' }]));
      return c.json(body, status as 400);
    }
    return c.json({ token: await tokenFor(user), userId: `dev:${user}`, expiresIn: DEV_TOKEN_SECONDS, warning: DEV_MODE_WARNING });
  });
  return { auth, routes, tokenFor };
}
