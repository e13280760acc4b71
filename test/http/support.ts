/**
 * What the HTTP tests share: a local JWKS server with keys generated here (jose), tokens signed
 * with them, and an app on a real SyncService over the test file's own PostgreSQL database. The
 * app's pino log is captured line by line, so tests can search it for secrets.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { pino } from 'pino';
import { SyncService } from '../../src/sync/sync-service.js';
import type { SyncServiceOptions } from '../../src/sync/types.js';
import { createJwtAuth, type JwtAuthOptions } from '../../src/http/auth.js';
import { createSyncApp, type HttpLimits } from '../../src/http/app.js';
import { toBase64Url } from '../../src/http/codec.js';
import { createTestOrm, type TestOrm } from '../support/database.js';
import { envelope } from '../support/fixtures.js';

export const ISSUER = 'https://issuer.test';
export const AUDIENCE = 'vault-db-test';

/** A signing key and its public JWK. */
export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

/** Generates an ES256 key pair with a fresh `kid`. */
export async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = randomUUID();
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

/** A JWKS server on 127.0.0.1 whose published keys a test can change; counts its fetches. */
export interface JwksServer {
  url: string;
  keys: SigningKey[];
  fetches: number;
  close(): Promise<void>;
}

/** Starts a JWKS server publishing `keys`. */
export async function startJwksServer(keys: SigningKey[]): Promise<JwksServer> {
  const state = { keys, fetches: 0 } as JwksServer;
  const server: Server = createServer((_req, res) => {
    state.fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  state.close = () => new Promise((resolve) => server.close(() => resolve()));
  return state;
}

/** Claims of a test token; each defaults to a valid value. */
export interface TokenOptions {
  key?: SigningKey;
  issuer?: string;
  audience?: string;
  expiresIn?: string | number;
  issuedAt?: number;
  azp?: string;
}

/** Signs a token for `sub`. */
export async function sign(sub: string | undefined, key: SigningKey, options: TokenOptions = {}): Promise<string> {
  let jwt = new SignJWT(options.azp ? { azp: options.azp } : {})
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt(options.issuedAt)
    .setExpirationTime(options.expiresIn ?? '5m');
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  return jwt.sign(options.key?.privateKey ?? key.privateKey);
}

/** The test file's database, JWKS server, service, app and captured log; filled in by `beforeAll`. */
export interface HttpContext {
  db: TestOrm;
  sync: SyncService;
  jwks: JwksServer;
  key: SigningKey;
  app: ReturnType<typeof createSyncApp>;
  /** Every log line the app wrote, as written. */
  logLines: string[];
  /** A fresh user and a valid token for them. */
  user(label?: string): Promise<{ userId: string; token: string }>;
  /** `app.request` with the token as a Bearer header and `body` as JSON. */
  call(token: string | null, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
}

/** Options of {@link setupHttp}. */
export interface SetupOptions {
  sync?: SyncServiceOptions;
  limits?: HttpLimits;
  auth?: Partial<JwtAuthOptions>;
  corsOrigins?: string[];
}

/** Creates the file's database, JWKS server and app in `beforeAll`, and removes them in `afterAll`. */
export function setupHttp(options: SetupOptions = {}): HttpContext {
  const ctx = { logLines: [] as string[] } as HttpContext;
  beforeAll(async () => {
    ctx.db = await createTestOrm();
    ctx.sync = new SyncService(ctx.db.orm.em, options.sync);
    ctx.key = await newSigningKey();
    ctx.jwks = await startJwksServer([ctx.key]);
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        ctx.logLines.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0));
        done();
      },
    });
    ctx.app = createSyncApp({
      sync: ctx.sync,
      auth: createJwtAuth({ jwks: ctx.jwks.url, issuer: ISSUER, audience: [AUDIENCE], jwksCooldownMs: 0, ...options.auth }),
      limits: options.limits ?? { rateLimit: false },
      logger: pino({ level: 'debug' }, sink),
      ready: async () => {
        await ctx.db.orm.em.getConnection().execute('select 1');
      },
      ...(options.corsOrigins ? { corsOrigins: options.corsOrigins } : {}),
    });
    ctx.user = async (label = 'user') => {
      const userId = `${label}_${randomUUID()}`;
      return { userId, token: await sign(userId, ctx.key) };
    };
    ctx.call = (token, method, path, body, headers = {}) =>
      Promise.resolve(
        ctx.app.request(path, {
          method,
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
          ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
        }),
      );
  });
  afterAll(async () => {
    await ctx.jwks?.close();
    await ctx.db?.close();
  });
  return ctx;
}

/** A valid enable-vault body, with its raw bytes. */
export function envelopeBody(): { body: { wrappedKey: string; salt: string; kdfParams: unknown }; wrappedKey: Buffer; salt: Buffer } {
  const e = envelope({ algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 });
  const wrappedKey = Buffer.from(e.wrappedKey);
  const salt = Buffer.from(e.salt);
  return { body: { wrappedKey: toBase64Url(wrappedKey), salt: toBase64Url(salt), kdfParams: e.kdfParams }, wrappedKey, salt };
}

/** A digest of every table the service writes, to prove a refused request changed nothing. */
export async function databaseDigest(db: TestOrm): Promise<string> {
  const { rows } = await db.pool.query<{ d: string }>(
    `select md5(coalesce((select string_agg(t::text, '|' order by t::text) from vaults t), '') ||
                coalesce((select string_agg(t::text, '|' order by t::text) from records t), '') ||
                coalesce((select string_agg(t::text, '|' order by t::text) from key_rotations t), '') ||
                coalesce((select string_agg(t::text, '|' order by t::text) from staged_records t), '')) as d`,
  );
  return rows[0]!.d;
}
