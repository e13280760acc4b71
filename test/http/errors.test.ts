/**
 * Every error status of the API, each with the `{ error: { code, message, violations? } }` shape,
 * and the fuzzed surface: malformed JSON, wrong types, huge bodies, bad base64url and bad query
 * strings all end in a 4xx and leave the database exactly as it was.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { pino } from 'pino';
import { createSyncApp } from '../../src/http/app.js';
import { createJwtAuth } from '../../src/http/auth.js';
import { toBase64Url } from '../../src/http/codec.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { AUDIENCE, databaseDigest, envelopeBody, ISSUER, setupHttp } from './support.js';

// Small limits, so the limit errors are cheap to reach; the body limit follows from them.
const ctx = setupHttp({ sync: { limits: { maxChanges: 3, maxRecordBytes: 64, maxPushBytes: 128, maxRotationRecords: 3, maxRotationBytes: 192 } } });

interface ErrorJson {
  error: { code: string; message: string; violations?: { path: string; rule: string; recordId?: string }[]; currentVersion?: number };
}

async function expectError(res: Response, status: number, code: string): Promise<ErrorJson['error']> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  const body = (await res.json()) as ErrorJson;
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  return body.error;
}

async function enabled(): Promise<{ userId: string; token: string }> {
  const u = await ctx.user();
  expect((await ctx.call(u.token, 'POST', '/v1/vault', envelopeBody().body)).status).toBe(201);
  return u;
}

const put = (recordId: string, size = 16, baseVersion = 0) => ({ recordId, baseVersion, ciphertext: toBase64Url(randomBytes(size)) });

describe('status codes', () => {
  test('400 validation_failed from the library, with its violations', async () => {
    const u = await ctx.user();
    const weak = { ...envelopeBody().body, kdfParams: { algorithm: 'PBKDF2', iterations: 1000, saltLength: 16 } };
    const error = await expectError(await ctx.call(u.token, 'POST', '/v1/vault', weak), 400, 'validation_failed');
    expect(error.violations?.some((v) => v.path.includes('iterations'))).toBe(true);
  });

  test('400 for a shape the schema refuses names the field and the record', async () => {
    const u = await enabled();
    const error = await expectError(await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'r9', baseVersion: 'one', ciphertext: 'AA' }] }), 400, 'validation_failed');
    expect(error.violations).toContainEqual(expect.objectContaining({ recordId: 'r9' }));
  });

  test('404 vault_not_found, and not_found for an unknown route', async () => {
    const u = await ctx.user();
    await expectError(await ctx.call(u.token, 'GET', '/v1/vault'), 404, 'vault_not_found');
    await expectError(await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [] }), 404, 'vault_not_found');
    await expectError(await ctx.call(null, 'GET', '/v2/nothing'), 404, 'not_found');
  });

  test('409 vault_already_enabled, version_conflict (with currentVersion) and stale_key', async () => {
    const u = await enabled();
    await expectError(await ctx.call(u.token, 'POST', '/v1/vault', envelopeBody().body), 409, 'vault_already_enabled');
    const conflict = await expectError(await ctx.call(u.token, 'PUT', '/v1/vault/envelope', { expectedVersion: 7, ...envelopeBody().body }), 409, 'version_conflict');
    expect(conflict.currentVersion).toBe(1);
    await ctx.call(u.token, 'POST', '/v1/vault/rotate', { expectedVersion: 1, ...envelopeBody().body, records: [] });
    const stale = await expectError(await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [put('a')], keyVersion: 1 }), 409, 'stale_key');
    expect(stale.currentVersion).toBe(2);
  });

  test('410 resync_required for a malformed cursor, in a pull and in a push', async () => {
    const u = await enabled();
    await expectError(await ctx.call(u.token, 'GET', '/v1/vault/changes?cursor=not-a-cursor'), 410, 'resync_required');
    await expectError(await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [put('a')], cursor: 'garbage' }), 410, 'resync_required');
  });

  test('413 limit_exceeded for the library limits: too many changes, too large a record', async () => {
    const u = await enabled();
    const many = await expectError(await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [put('a', 1), put('b', 1), put('c', 1), put('d', 1)] }), 413, 'limit_exceeded');
    expect(many.violations?.length).toBeGreaterThan(0);
    await expectError(await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [put('big', 65)] }), 413, 'limit_exceeded');
  });

  test('413 for a body over maxBodyBytes, by Content-Length and by a streamed body without one', async () => {
    const u = await enabled();
    const { maxBodyBytes } = (await (await ctx.call(null, 'GET', '/v1/config')).json()) as { maxBodyBytes: number };
    const huge = JSON.stringify({ changes: [{ recordId: 'x'.repeat(maxBodyBytes), baseVersion: 0, ciphertext: 'AA' }] });
    const before = await databaseDigest(ctx.db);
    await expectError(await ctx.call(u.token, 'POST', '/v1/vault/push', huge), 413, 'limit_exceeded');
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode(huge.slice((i * huge.length) / 4, ((i + 1) * huge.length) / 4)));
        controller.close();
      },
    });
    const res = await ctx.app.request('/v1/vault/push', { method: 'POST', headers: { authorization: `Bearer ${u.token}`, 'transfer-encoding': 'chunked' }, body: stream, duplex: 'half' } as RequestInit);
    await expectError(res, 413, 'limit_exceeded');
    expect(await databaseDigest(ctx.db)).toBe(before);
  });

  test('429 rate_limited per user, with Retry-After; another user is not affected', async () => {
    const app = createSyncApp({
      sync: ctx.sync,
      auth: createJwtAuth({ jwks: ctx.jwks.url, issuer: ISSUER, audience: [AUDIENCE] }),
      logger: pino({ level: 'silent' }),
      limits: { rateLimit: { windowMs: 60_000, limit: 2 } },
    });
    const a = await ctx.user();
    const b = await ctx.user();
    const get = (token: string) => app.request('/v1/vault', { headers: { authorization: `Bearer ${token}` } });
    expect((await get(a.token)).status).toBe(404);
    expect((await get(a.token)).status).toBe(404);
    const limited = await get(a.token);
    expect(limited.headers.get('retry-after')).toBe('60');
    await expectError(limited, 429, 'rate_limited');
    expect((await get(b.token)).status).toBe(404);
  });

  test('503 transient with Retry-After when the vault lock is held past lockTimeoutMs', async () => {
    const u = await enabled();
    const app = createSyncApp({
      sync: new SyncService(ctx.db.orm.em, { lockTimeoutMs: 50 }),
      auth: createJwtAuth({ jwks: ctx.jwks.url, issuer: ISSUER, audience: [AUDIENCE] }),
      logger: pino({ level: 'silent' }),
      limits: { rateLimit: false },
    });
    const holder = await ctx.db.pool.connect();
    try {
      await holder.query('begin');
      await holder.query('select 1 from vaults where user_id = $1 for update', [u.userId]);
      const res = await app.request('/v1/vault/push', { method: 'POST', headers: { authorization: `Bearer ${u.token}` }, body: JSON.stringify({ changes: [put('a')] }) });
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      await expectError(res, 503, 'transient');
    } finally {
      await holder.query('rollback');
      holder.release();
    }
  });

  test('/v1/health is 503 when the database does not answer', async () => {
    const app = createSyncApp({
      sync: ctx.sync,
      auth: createJwtAuth({ jwks: ctx.jwks.url, issuer: ISSUER }),
      logger: pino({ level: 'silent' }),
      ready: () => Promise.reject(new Error('connection refused')),
    });
    const res = await app.request('/v1/health');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', database: 'unavailable' });
  });
});

describe('the fuzzed surface: 4xx with the error shape, and the database unchanged', () => {
  test('hand-picked bad requests', async () => {
    const u = await enabled();
    await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [put('keep')] });
    const before = await databaseDigest(ctx.db);
    const bad: [string, string, unknown, string?][] = [
      ['POST', '/v1/vault/push', '{"changes": ['],
      ['POST', '/v1/vault/push', ''],
      ['POST', '/v1/vault/push', 'null'],
      ['POST', '/v1/vault/push', '[]'],
      ['POST', '/v1/vault/push', { changes: 'all' }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 5, baseVersion: 0, ciphertext: 'AA' }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: -1, ciphertext: 'AA' }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0.5, ciphertext: 'AA' }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: 'AA==' }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: 'a+b/' }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: 'AB' }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: 'A' }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: 'AA AA' }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0 }] }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 1, deleted: true, ciphertext: 'AA' }] }],
      ['POST', '/v1/vault/push', { changes: [], extra: 1 }],
      ['POST', '/v1/vault/push', { changes: [{ recordId: 'a\u0000b', baseVersion: 0, ciphertext: 'AA' }] }],
      ['PUT', '/v1/vault/envelope', { expectedVersion: 1, ...envelopeBody().body, salt: 'not base64!' }],
      ['PUT', '/v1/vault/envelope', { expectedVersion: '1', ...envelopeBody().body }],
      ['POST', '/v1/vault/rotations', { expectedVersion: null }],
      ['GET', '/v1/vault/changes?limit=abc', undefined],
      ['GET', '/v1/vault/changes?limit=0', undefined],
      ['GET', '/v1/vault/changes?limit=-5', undefined],
      ['GET', '/v1/vault/changes?limit=1e3', undefined],
      ['GET', '/v1/vault/changes?maxBytes=99999999999999', undefined],
      ['GET', '/v1/vault/changes?limit=1&limit=2', undefined],
      ['GET', '/v1/vault/changes?since=0', undefined],
      ['GET', '/v1/vault/changes?cursor=%FF%FE', undefined],
    ];
    for (const [method, path, body] of bad) {
      const res = await ctx.call(u.token, method, path, body);
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBeGreaterThanOrEqual(400);
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBeLessThan(500);
      const json = (await res.json()) as ErrorJson;
      expect(typeof json.error.code).toBe('string');
      expect(typeof json.error.message).toBe('string');
    }
    expect(await databaseDigest(ctx.db)).toBe(before);
  });

  test('random JSON bodies and random query strings', async () => {
    const u = await enabled();
    const before = await databaseDigest(ctx.db);
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.json(), fc.string()), fc.constantFrom('/v1/vault/push', '/v1/vault/rotate', '/v1/vault/rotations', '/v1/vault'), async (body, path) => {
        const res = await ctx.call(u.token, path === '/v1/vault' ? 'PUT' : 'POST', path === '/v1/vault' ? '/v1/vault/envelope' : path, body);
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(typeof ((await res.json()) as ErrorJson).error.code).toBe('string');
      }),
      { numRuns: 60 },
    );
    await fc.assert(
      fc.asyncProperty(fc.string(), fc.string(), async (name, value) => {
        const res = await ctx.call(u.token, 'GET', `/v1/vault/changes?${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
        // An empty or unnamed parameter may be a full sync; anything else is refused with the shape.
        expect(res.status === 200 || (res.status >= 400 && res.status < 500)).toBe(true);
        if (res.status !== 200) expect(typeof ((await res.json()) as ErrorJson).error.code).toBe('string');
      }),
      { numRuns: 60 },
    );
    expect(await databaseDigest(ctx.db)).toBe(before);
  });
});
