/**
 * The API's surface beyond single routes: the OpenAPI document lists every registered route, CORS
 * answers only configured origins, the log never carries tokens, ciphertext, keys or salts, and
 * the package's main entry never loads the HTTP layer.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { toBase64Url } from '../../src/http/codec.js';
import { findNeedles, needlesOf, secret } from '../support/secret-needles.js';
import { setupHttp } from './support.js';

const ctx = setupHttp({ corsOrigins: ['https://app.test'] });

describe('OpenAPI', () => {
  test('GET /v1/openapi.json is OpenAPI 3.1 and lists every route the app registers, with its method', async () => {
    const res = await ctx.call(null, 'GET', '/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: unknown; security: unknown[] }>> };
    expect(doc.openapi).toBe('3.1.0');
    const registered = ctx.app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(registered.length).toBe(14);
    expect(documented.sort()).toEqual(registered.sort());
    // The request schemas are the validating ones: the push body names its fields and base64url.
    const push = JSON.stringify(doc.paths['/v1/vault/push']!.post!.requestBody);
    for (const field of ['changes', 'recordId', 'baseVersion', 'ciphertext', 'base64url', 'atomic', 'cursor', 'keyVersion']) expect(push).toContain(field);
    expect(doc.paths['/v1/health']!.get!.security).toEqual([]);
    expect(doc.paths['/v1/vault']!.get!.security).toEqual([{ bearer: [] }]);
  });
});

describe('CORS', () => {
  test('a configured origin is allowed, preflight included; any other gets no CORS headers', async () => {
    const ok = await ctx.call(null, 'OPTIONS', '/v1/vault/push', undefined, { origin: 'https://app.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' });
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.test');
    expect(ok.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    const evil = await ctx.call(null, 'GET', '/v1/config', undefined, { origin: 'https://evil.test' });
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('logs', () => {
  test('requests that succeed and fail leave request lines, but no token, ciphertext, key or salt', async () => {
    const u = await ctx.user();
    const wrappedKey = secret('wrapped', 60);
    const salt = secret('salt', 16);
    const ciphertext = secret('ciphertext', 48);
    const env = { wrappedKey: toBase64Url(wrappedKey), salt: toBase64Url(salt), kdfParams: { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 } };
    expect((await ctx.call(u.token, 'POST', '/v1/vault', env)).status).toBe(201);
    await ctx.call(u.token, 'POST', '/v1/vault', env); // 409
    await ctx.call(u.token, 'PUT', '/v1/vault/envelope', { ...env, expectedVersion: 9 }); // 409
    await ctx.call(u.token, 'PUT', '/v1/vault/envelope', { ...env, expectedVersion: 1, kdfParams: { algorithm: 'PBKDF2', iterations: 1, saltLength: 16 } }); // 400
    const pushed = await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'r', baseVersion: 0, ciphertext: toBase64Url(ciphertext) }] });
    const { cursor } = (await pushed.json()) as { cursor: string };
    await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'r', baseVersion: 0, ciphertext: toBase64Url(ciphertext) }] }); // conflict echoing the server's ciphertext
    await ctx.call(u.token, 'POST', '/v1/vault/push', { changes: [{ recordId: 'r', baseVersion: 1, ciphertext: `${toBase64Url(ciphertext)}=` }] }); // 400
    await ctx.call(u.token, 'GET', `/v1/vault/changes?cursor=${encodeURIComponent(cursor)}`);
    await ctx.call(u.token.slice(0, -4) + 'AAAA', 'GET', '/v1/vault'); // 401

    const lines = ctx.logLines;
    expect(lines.filter((l) => l.includes('"msg":"request"')).length).toBeGreaterThanOrEqual(8);
    const [, payload, signature] = u.token.split('.');
    const needles = {
      ...needlesOf('wrappedKey', wrappedKey),
      ...needlesOf('salt', salt),
      ...needlesOf('ciphertext', ciphertext),
      token: u.token,
      'token payload': payload!,
      'token signature': signature!.slice(0, 20),
      cursor,
    };
    expect(findNeedles(lines, needles)).toEqual([]);
  });
});

describe('the main entry does not load the HTTP layer', () => {
  test("src/index.ts's import graph reaches no file of src/http and no hono, jose or pino", () => {
    const seen = new Set<string>();
    const bare = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/g)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else bare.add(spec);
      }
    };
    const root = resolve(import.meta.dirname, '../../src');
    visit(resolve(root, 'index.ts'));
    expect(seen.size).toBeGreaterThan(10);
    expect([...seen].filter((f) => f.startsWith(resolve(root, 'http')))).toEqual([]);
    expect([...bare].filter((s) => /^(hono|@hono\/|hono-rate-limiter|jose|pino)/.test(s))).toEqual([]);
    const pkg = JSON.parse(readFileSync(resolve(root, '../package.json'), 'utf8')) as { exports: Record<string, { import: string }> };
    expect(pkg.exports['./http']?.import).toBe('./dist/http/index.js');
  });
});
