/**
 * Authentication edge cases against a local JWKS server: every refused token is a 401 with the
 * error shape, and no refused request reaches the database. One user's token can't reach another
 * user's vault: the user id comes only from the verified `sub`, and no route takes one.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { createSyncApp } from '../../src/http/app.js';
import { createJwtAuth } from '../../src/http/auth.js';
import { toBase64Url } from '../../src/http/codec.js';
import { AUDIENCE, databaseDigest, envelopeBody, ISSUER, newSigningKey, setupHttp, sign } from './support.js';

const ctx = setupHttp();

async function expect401(res: Response): Promise<string> {
  expect(res.status).toBe(401);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe('unauthorized');
  return body.error.message;
}

describe('refused tokens', () => {
  test('no token, or another scheme: 401 with WWW-Authenticate: Bearer', async () => {
    const none = await ctx.call(null, 'GET', '/v1/vault');
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    await expect401(none);
    await expect401(await ctx.call(null, 'GET', '/v1/vault', undefined, { authorization: 'Basic dXNlcjpwYXNz' }));
    await expect401(await ctx.call(null, 'GET', '/v1/vault', undefined, { authorization: 'Bearer ' }));
  });

  test('a bad signature: signed by another key under a published kid', async () => {
    const impostor = await newSigningKey();
    const token = await sign('user_x', { ...ctx.key, privateKey: impostor.privateKey });
    expect(await expect401(await ctx.call(token, 'GET', '/v1/vault'))).toMatch(/signature/);
  });

  test('a tampered payload (another sub under the original signature)', async () => {
    const token = await sign('user_a', ctx.key);
    const [h, , s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'user_b', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 })).toString('base64url')}.${s}`;
    await expect401(await ctx.call(forged, 'GET', '/v1/vault'));
  });

  test('an expired token, beyond the clock skew', async () => {
    const token = await sign('user_x', ctx.key, { issuedAt: Math.floor(Date.now() / 1000) - 600, expiresIn: Math.floor(Date.now() / 1000) - 60 });
    expect(await expect401(await ctx.call(token, 'GET', '/v1/vault'))).toMatch(/expired/);
  });

  test('a wrong issuer, a wrong audience', async () => {
    expect(await expect401(await ctx.call(await sign('u', ctx.key, { issuer: 'https://evil.test' }), 'GET', '/v1/vault'))).toMatch(/iss/);
    expect(await expect401(await ctx.call(await sign('u', ctx.key, { audience: 'another-app' }), 'GET', '/v1/vault'))).toMatch(/aud/);
  });

  test('the none algorithm, and HMAC, are refused', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = { sub: 'user_x', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 };
    await expect401(await ctx.call(`${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`, 'GET', '/v1/vault'));
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: ctx.key.kid }).sign(randomBytes(32));
    await expect401(await ctx.call(hs, 'GET', '/v1/vault'));
  });

  test('a token without sub', async () => {
    await expect401(await ctx.call(await sign(undefined, ctx.key), 'GET', '/v1/vault'));
  });

  test('an unknown kid makes jose fetch the JWKS again: a newly published key is accepted, an unpublished one is not', async () => {
    const rotated = await newSigningKey();
    const u = await ctx.user();
    const token = await sign(u.userId, rotated);
    // Known keys first, so the set is cached before the new key exists.
    await ctx.call(u.token, 'GET', '/v1/vault');
    const before = ctx.jwks.fetches;
    await expect401(await ctx.call(token, 'GET', '/v1/vault'));
    expect(ctx.jwks.fetches).toBeGreaterThan(before);

    ctx.jwks.keys.push(rotated);
    const fetched = ctx.jwks.fetches;
    const res = await ctx.call(token, 'POST', '/v1/vault', envelopeBody().body);
    expect(res.status).toBe(201);
    expect(ctx.jwks.fetches).toBeGreaterThan(fetched);
  });

  test('azp is checked when authorized parties are configured', async () => {
    const app = createSyncApp({
      sync: ctx.sync,
      auth: createJwtAuth({ jwks: ctx.jwks.url, issuer: ISSUER, authorizedParties: ['https://app.test'], jwksCooldownMs: 0 }),
      logger: pino({ level: 'silent' }),
      limits: { rateLimit: false },
    });
    const u = await ctx.user();
    const get = async (token: string) => app.request('/v1/vault', { headers: { authorization: `Bearer ${token}` } });
    await expect401(await get(await sign(u.userId, ctx.key, { azp: 'https://evil.test' })));
    await expect401(await get(await sign(u.userId, ctx.key)));
    expect((await get(await sign(u.userId, ctx.key, { azp: 'https://app.test' }))).status).toBe(404);
  });

  test('a JWKS that can not be fetched (closed port, HTTP 500) is a 503 transient with Retry-After, not a 401', async () => {
    const broken = createServer((_req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    await new Promise<void>((r) => broken.listen(0, '127.0.0.1', r));
    const port = (broken.address() as AddressInfo).port;
    try {
      for (const jwks of [`http://127.0.0.1:${port}/jwks.json`, 'http://127.0.0.1:9/jwks.json']) {
        const app = createSyncApp({ sync: ctx.sync, auth: createJwtAuth({ jwks, issuer: ISSUER, jwksCooldownMs: 0 }), logger: pino({ level: 'silent' }), limits: { rateLimit: false } });
        const res = await app.request('/v1/vault', { headers: { authorization: `Bearer ${await sign('u', ctx.key)}` } });
        expect(res.status, jwks).toBe(503);
        expect(res.headers.get('retry-after')).toBe('5');
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('transient');
      }
    } finally {
      await new Promise((r) => broken.close(r));
    }
  });

  test('refused tokens write nothing', async () => {
    const before = await databaseDigest(ctx.db);
    const body = { changes: [{ recordId: 'r', baseVersion: 0, ciphertext: toBase64Url(randomBytes(8)) }] };
    await expect401(await ctx.call(null, 'POST', '/v1/vault', envelopeBody().body));
    await expect401(await ctx.call(await sign('u', ctx.key, { issuer: 'https://evil.test' }), 'POST', '/v1/vault/push', body));
    expect(await databaseDigest(ctx.db)).toBe(before);
  });
});

describe('one user can not reach another user’s data', () => {
  test("B's token sees, pulls, pushes, rotates and deletes only B's vault; A's rows are untouched", async () => {
    const a = await ctx.user('alice');
    const b = await ctx.user('bob');
    expect((await ctx.call(a.token, 'POST', '/v1/vault', envelopeBody().body)).status).toBe(201);
    await ctx.call(a.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'secret', baseVersion: 0, ciphertext: toBase64Url(randomBytes(32)) }] });
    const { rotationId } = (await (await ctx.call(a.token, 'POST', '/v1/vault/rotations', { expectedVersion: 1 })).json()) as { rotationId: string };
    const before = await databaseDigest(ctx.db);

    for (const [method, path] of [['GET', '/v1/vault'], ['GET', '/v1/vault/changes'], ['DELETE', '/v1/vault']] as const) {
      const res = await ctx.call(b.token, method, path);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('vault_not_found');
    }
    // No route takes a user id: naming one is an unknown field.
    const named = await ctx.call(b.token, 'POST', '/v1/vault/push', { userId: a.userId, changes: [] });
    expect(named.status).toBe(400);
    expect(await databaseDigest(ctx.db)).toBe(before);

    // With a vault of B's own, A's rotation id is not found for B, and A's records never show.
    expect((await ctx.call(b.token, 'POST', '/v1/vault', envelopeBody().body)).status).toBe(201);
    const commit = await ctx.call(b.token, 'POST', `/v1/vault/rotations/${rotationId}/commit`, { expectedVersion: 1, ...envelopeBody().body });
    expect(commit.status).toBe(404);
    expect(((await commit.json()) as { error: { code: string } }).error.code).toBe('rotation_not_found');
    expect(await (await ctx.call(b.token, 'DELETE', `/v1/vault/rotations/${rotationId}`)).json()).toEqual({ aborted: false });
    const page = (await (await ctx.call(b.token, 'GET', '/v1/vault/changes')).json()) as { changes: unknown[] };
    expect(page.changes).toEqual([]);
    const { rows } = await ctx.db.pool.query('select 1 from key_rotations k join vaults v on v.id = k.vault_id where v.user_id = $1', [a.userId]);
    expect(rows).toHaveLength(1);
  });
});
