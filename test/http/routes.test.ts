/**
 * Every route of the HTTP API, end to end: through the Hono app, a real SyncService and the test
 * file's PostgreSQL database, with tokens verified against a local JWKS server. Results are
 * checked against the rows in the database, not only against the responses.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { DEFAULT_LIMITS } from '../../src/sync/types.js';
import { defaultMaxBodyBytes } from '../../src/http/app.js';
import { fromBase64Url, toBase64Url } from '../../src/http/codec.js';
import { envelopeBody, setupHttp } from './support.js';

const ctx = setupHttp();

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

async function enabled(): Promise<{ userId: string; token: string }> {
  const u = await ctx.user();
  const res = await ctx.call(u.token, 'POST', '/v1/vault', envelopeBody().body);
  expect(res.status).toBe(201);
  return u;
}

describe('open routes', () => {
  test('GET /v1/health reports the process live and the database ready', async () => {
    const res = await ctx.call(null, 'GET', '/v1/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', database: 'ok' });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('GET /v1/config is SyncLimits field for field plus maxBodyBytes', async () => {
    const res = await ctx.call(null, 'GET', '/v1/config');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ...DEFAULT_LIMITS, maxBodyBytes: defaultMaxBodyBytes(DEFAULT_LIMITS) });
  });

  test('an incoming well-formed X-Request-Id is kept and echoed', async () => {
    const res = await ctx.call(null, 'GET', '/v1/config', undefined, { 'x-request-id': 'client-abc-123' });
    expect(res.headers.get('x-request-id')).toBe('client-abc-123');
  });
});

describe('the vault', () => {
  test('POST /v1/vault enables it (201, VaultInfo with base64url bytes and ISO dates) and stores the bytes', async () => {
    const u = await ctx.user();
    const env = envelopeBody();
    const res = await ctx.call(u.token, 'POST', '/v1/vault', { ...env.body, deviceFingerprint: 'laptop' });
    expect(res.status).toBe(201);
    const info = await json(res);
    expect(info).toMatchObject({ userId: u.userId, wrappedKey: env.body.wrappedKey, salt: env.body.salt, kdfParams: env.body.kdfParams, deviceFingerprint: 'laptop', version: 1, keyVersion: 1 });
    expect(new Date(info.enabledAt as string).toISOString()).toBe(info.enabledAt);
    expect(info.wrappedKey).not.toMatch(/[=+/]/);
    const { rows } = await ctx.db.pool.query<{ wrapped_key: Buffer; salt: Buffer }>('select wrapped_key, salt from vaults where user_id = $1', [u.userId]);
    expect(rows[0]!.wrapped_key.equals(env.wrappedKey)).toBe(true);
    expect(rows[0]!.salt.equals(env.salt)).toBe(true);
  });

  test('GET /v1/vault returns the same VaultInfo', async () => {
    const u = await ctx.user();
    const created = await json(await ctx.call(u.token, 'POST', '/v1/vault', envelopeBody().body));
    const res = await ctx.call(u.token, 'GET', '/v1/vault');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(created);
  });

  test('DELETE /v1/vault disables it and reports the deleted records; the rows are gone', async () => {
    const u = await enabled();
    await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: toBase64Url(randomBytes(20)) }, { recordId: 'b', baseVersion: 0, ciphertext: toBase64Url(randomBytes(20)) }] });
    const res = await ctx.call(u.token, 'DELETE', '/v1/vault');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ deletedRecords: 2 });
    const { rows } = await ctx.db.pool.query('select 1 from vaults where user_id = $1 union all select 1 from records where user_id = $1', [u.userId]);
    expect(rows).toEqual([]);
  });

  test('PUT /v1/vault/envelope rewraps: new bytes, version + 1, same key version', async () => {
    const u = await enabled();
    const next = envelopeBody();
    const res = await ctx.call(u.token, 'PUT', '/v1/vault/envelope', { expectedVersion: 1, ...next.body });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ version: 2, keyVersion: 1, wrappedKey: next.body.wrappedKey });
    const { rows } = await ctx.db.pool.query<{ wrapped_key: Buffer }>('select wrapped_key from vaults where user_id = $1', [u.userId]);
    expect(rows[0]!.wrapped_key.equals(next.wrappedKey)).toBe(true);
  });
});

describe('push and pull', () => {
  test('POST /v1/vault/push applies changes; GET /v1/vault/changes returns them with the same bytes', async () => {
    const u = await enabled();
    const a = randomBytes(40);
    const pushed = await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: toBase64Url(a) }] });
    expect(pushed.status).toBe(200);
    const result = await json(pushed);
    expect(result).toMatchObject({ applied: [{ recordId: 'a', version: 1 }], conflicts: [] });
    expect(typeof result.cursor).toBe('string');

    const pulled = await ctx.call(u.token, 'GET', '/v1/vault/changes');
    expect(pulled.status).toBe(200);
    const page = (await pulled.json()) as { changes: { recordId: string; version: number; deleted: boolean; ciphertext: string; updatedAt: string }[]; cursor: string; hasMore: boolean };
    expect(page.hasMore).toBe(false);
    expect(page.changes).toHaveLength(1);
    expect(page.changes[0]).toMatchObject({ recordId: 'a', version: 1, deleted: false });
    expect(fromBase64Url(page.changes[0]!.ciphertext)!.equals(a)).toBe(true);
    const { rows } = await ctx.db.pool.query<{ ciphertext: Buffer }>('select ciphertext from records where user_id = $1', [u.userId]);
    expect(rows[0]!.ciphertext.equals(a)).toBe(true);

    // From the returned cursor there is nothing new; an empty cursor is a full sync again.
    const after = (await json(await ctx.call(u.token, 'GET', `/v1/vault/changes?cursor=${encodeURIComponent(page.cursor)}`))) as { changes: unknown[] };
    expect(after.changes).toEqual([]);
    const full = (await json(await ctx.call(u.token, 'GET', '/v1/vault/changes?cursor='))) as { changes: unknown[] };
    expect(full.changes).toHaveLength(1);
  });

  test('pull honours limit: hasMore, then the rest from the cursor', async () => {
    const u = await enabled();
    const changes = ['r1', 'r2', 'r3'].map((recordId) => ({ recordId, baseVersion: 0, ciphertext: toBase64Url(randomBytes(8)) }));
    await ctx.call(u.token, 'POST', '/v1/vault/push', { changes });
    const first = (await json(await ctx.call(u.token, 'GET', '/v1/vault/changes?limit=2'))) as { changes: { recordId: string }[]; cursor: string; hasMore: boolean };
    expect(first.changes.map((c) => c.recordId)).toEqual(['r1', 'r2']);
    expect(first.hasMore).toBe(true);
    const rest = (await json(await ctx.call(u.token, 'GET', `/v1/vault/changes?limit=2&maxBytes=1000&cursor=${encodeURIComponent(first.cursor)}`))) as { changes: { recordId: string }[]; hasMore: boolean };
    expect(rest.changes.map((c) => c.recordId)).toEqual(['r3']);
    expect(rest.hasMore).toBe(false);
  });

  test('a conflict is data in a 200, carrying the server state in base64url; a delete leaves a tombstone', async () => {
    const u = await enabled();
    const first = randomBytes(16);
    await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'x', baseVersion: 0, ciphertext: toBase64Url(first) }] });
    const res = await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'x', baseVersion: 0, ciphertext: toBase64Url(randomBytes(16)) }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { applied: unknown[]; conflicts: { recordId: string; reason: string; server: { version: number; ciphertext: string; updatedAt: string } }[] };
    expect(body.applied).toEqual([]);
    expect(body.conflicts[0]).toMatchObject({ recordId: 'x', reason: 'exists', server: { version: 1, ciphertext: toBase64Url(first) } });

    const del = await json(await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'x', baseVersion: 1, deleted: true }] }));
    expect(del.applied).toEqual([{ recordId: 'x', version: 2 }]);
    const page = (await json(await ctx.call(u.token, 'GET', '/v1/vault/changes'))) as { changes: unknown[] };
    expect(page.changes).toMatchObject([{ recordId: 'x', version: 2, deleted: true, ciphertext: null }]);
  });
});

describe('key rotation', () => {
  test('POST /v1/vault/rotate re-encrypts every live record in one call', async () => {
    const u = await enabled();
    await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'k', baseVersion: 0, ciphertext: toBase64Url(randomBytes(16)) }] });
    const fresh = randomBytes(16);
    const res = await ctx.call(u.token, 'POST', '/v1/vault/rotate', { expectedVersion: 1, ...envelopeBody().body, records: [{ recordId: 'k', baseVersion: 1, ciphertext: toBase64Url(fresh) }] });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ version: 2, keyVersion: 2 });
    const { rows } = await ctx.db.pool.query<{ ciphertext: Buffer }>('select ciphertext from records where user_id = $1', [u.userId]);
    expect(rows[0]!.ciphertext.equals(fresh)).toBe(true);
  });

  test('the staged form: begin (201), stage, commit; and begin then abort', async () => {
    const u = await enabled();
    await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 's', baseVersion: 0, ciphertext: toBase64Url(randomBytes(16)) }] });
    const begun = await ctx.call(u.token, 'POST', '/v1/vault/rotations', { expectedVersion: 1 });
    expect(begun.status).toBe(201);
    const { rotationId } = (await begun.json()) as { rotationId: string };
    const fresh = randomBytes(16);
    const staged = await ctx.call(u.token, 'POST', `/v1/vault/rotations/${rotationId}/records`, { records: [{ recordId: 's', baseVersion: 1, ciphertext: toBase64Url(fresh) }] });
    expect(staged.status).toBe(200);
    expect(await staged.json()).toEqual({ staged: 1 });
    const committed = await ctx.call(u.token, 'POST', `/v1/vault/rotations/${rotationId}/commit`, { expectedVersion: 1, ...envelopeBody().body });
    expect(committed.status).toBe(200);
    expect(await committed.json()).toMatchObject({ version: 2, keyVersion: 2 });
    const { rows } = await ctx.db.pool.query<{ ciphertext: Buffer }>('select ciphertext from records where user_id = $1', [u.userId]);
    expect(rows[0]!.ciphertext.equals(fresh)).toBe(true);

    const again = (await json(await ctx.call(u.token, 'POST', '/v1/vault/rotations', { expectedVersion: 2 }))) as { rotationId: string };
    const aborted = await ctx.call(u.token, 'DELETE', `/v1/vault/rotations/${again.rotationId}`);
    expect(aborted.status).toBe(200);
    expect(await aborted.json()).toEqual({ aborted: true });
    const { rows: open } = await ctx.db.pool.query('select 1 from key_rotations where id::text = $1', [again.rotationId]);
    expect(open).toEqual([]);
  });
});
