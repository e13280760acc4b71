/**
 * Bearer-token authentication: a JWT verified with jose against a JWKS (its key rotation and
 * caching are jose's own), checking issuer, audience or authorized parties, expiry and clock skew.
 * The verified `sub` is the user id, and it is the only identity that reaches `SyncService`.
 * Clerk's session tokens are exactly this (issuer = the Clerk frontend API, `azp` = the origin).
 *
 * @module
 */
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { HttpError } from './http-errors.js';

/** Verifies a bearer token and returns the user id it proves. */
export interface Authenticator {
  /**
   * @param token the token after `Bearer `
   * @returns the verified user id
   * @throws HttpError 401 when the token is not acceptable
   */
  authenticate(token: string): Promise<string>;
}

/** Options of {@link createJwtAuth}. */
export interface JwtAuthOptions {
  /** The JWKS URL (fetched and cached by jose), or a key resolver of your own (dev mode, tests). */
  jwks: string | URL | JWTVerifyGetKey;
  /** The required `iss`. */
  issuer: string;
  /** Accepted `aud` values; when empty or absent, `aud` is not checked (Clerk's default tokens have none). */
  audience?: readonly string[];
  /** Accepted `azp` values (Clerk: the app's origins); when absent, `azp` is not checked. */
  authorizedParties?: readonly string[];
  /** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default 5. */
  clockToleranceSec?: number;
  /** Accepted signature algorithms. Default: the asymmetric ones (never `none` or HMAC). */
  algorithms?: readonly string[];
  /** jose's JWKS options: how long a fetched set is trusted, and the least time between fetches, in ms. */
  jwksCacheMaxAgeMs?: number;
  jwksCooldownMs?: number;
}

/** Asymmetric algorithms only: a JWKS of public keys can't verify HMAC, and `none` is never accepted. */
export const DEFAULT_JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/**
 * Builds an {@link Authenticator} that accepts JWTs signed by a key of the JWKS.
 *
 * @example
 * ```ts
 * const auth = createJwtAuth({ jwks: 'https://clerk.example.com/.well-known/jwks.json', issuer: 'https://clerk.example.com', authorizedParties: ['https://app.example.com'] });
 * ```
 */
export function createJwtAuth(options: JwtAuthOptions): Authenticator {
  const keys =
    typeof options.jwks === 'function'
      ? options.jwks
      : createRemoteJWKSet(new URL(options.jwks), {
          ...(options.jwksCacheMaxAgeMs !== undefined ? { cacheMaxAge: options.jwksCacheMaxAgeMs } : {}),
          ...(options.jwksCooldownMs !== undefined ? { cooldownDuration: options.jwksCooldownMs } : {}),
        });
  const audience = options.audience && options.audience.length > 0 ? [...options.audience] : undefined;
  const algorithms = [...(options.algorithms ?? DEFAULT_JWT_ALGORITHMS)];
  return {
    async authenticate(token: string): Promise<string> {
      let payload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: options.issuer,
          ...(audience ? { audience } : {}),
          algorithms,
          clockTolerance: options.clockToleranceSec ?? 5,
          requiredClaims: ['exp', 'sub'],
        }));
      } catch (error) {
        // The identity provider's keys could not be had: not the token's fault, so retry, don't sign out.
        if (keysUnavailable(error)) throw new HttpError(503, 'transient', 'The token could not be checked: the JWKS could not be fetched; retry.', undefined, { 'Retry-After': '5' });
        throw new HttpError(401, 'unauthorized', reason(error));
      }
      if (options.authorizedParties && !(typeof payload.azp === 'string' && options.authorizedParties.includes(payload.azp))) {
        throw new HttpError(401, 'unauthorized', 'The token was issued for another party (azp).');
      }
      if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new HttpError(401, 'unauthorized', 'The token names no subject (sub).');
      return payload.sub;
    },
  };
}

/**
 * True when the JWKS itself failed (timeout, network error, a non-200 answer, a malformed set),
 * as opposed to the token. jose reports a non-200 answer as a bare JOSEError with this message.
 */
function keysUnavailable(error: unknown): boolean {
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid) return true;
  if (error instanceof joseErrors.JOSEError) return error.constructor === joseErrors.JOSEError && /JSON Web Key Set HTTP response/.test(error.message);
  return error instanceof TypeError; // fetch failed: the JWKS host can't be reached
}

/** Why a token was refused, in words that never quote the token. */
function reason(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'The token has expired.';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `The token's "${error.claim}" claim is not acceptable.`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "The token's signature does not verify.";
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'The token was signed by a key the issuer does not publish.';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "The token's algorithm is not accepted.";
  return 'The token could not be verified.';
}
