/**
 * The standalone server: its configuration refuses bad values in one line (dev mode only on
 * loopback and never with a JWKS), and the real process, in dev mode on the test database, serves
 * the API over TCP and on SIGTERM finishes a request still in flight before it exits. As the
 * application role without the claim key it refuses to start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { ConfigurationError } from '../../src/errors.js';
import { readServeConfig } from '../../src/http/serve-config.js';
import { toBase64Url } from '../../src/http/codec.js';
import { createAppRole } from '../support/app-role.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitUntil } from '../support/wait.js';
import { envelopeBody } from './support.js';

const ROOT = resolve(import.meta.dirname, '../..');

describe('readServeConfig', () => {
  const refuses = (env: NodeJS.ProcessEnv, pattern: RegExp) => {
    let error: unknown;
    try {
      readServeConfig(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(pattern);
    expect((error as Error).message).not.toContain('\n');
  };

  test('defaults: dev mode on 127.0.0.1:8787, no CORS', () => {
    expect(readServeConfig({})).toEqual({ port: 8787, host: '127.0.0.1', corsOrigins: [], auth: { mode: 'dev' } });
  });

  test('a JWKS configuration, with audiences, parties and origins as lists', () => {
    const config = readServeConfig({
      PORT: '9000',
      HOST: '0.0.0.0',
      AUTH_JWKS_URL: 'https://clerk.example.com/.well-known/jwks.json',
      AUTH_ISSUER: 'https://clerk.example.com',
      AUTH_AUDIENCE: 'a, b',
      AUTH_AUTHORIZED_PARTIES: 'https://app.example.com',
      CORS_ORIGINS: 'https://app.example.com,http://localhost:3000',
    });
    expect(config).toEqual({
      port: 9000,
      host: '0.0.0.0',
      corsOrigins: ['https://app.example.com', 'http://localhost:3000'],
      auth: { mode: 'jwks', jwksUrl: 'https://clerk.example.com/.well-known/jwks.json', issuer: 'https://clerk.example.com', audience: ['a', 'b'], authorizedParties: ['https://app.example.com'] },
    });
  });

  test('bad values are refused in one line naming the variable', () => {
    refuses({ PORT: 'eighty' }, /^PORT/);
    refuses({ PORT: '70000' }, /^PORT/);
    refuses({ HOST: 'my host' }, /^HOST/);
    refuses({ CORS_ORIGINS: 'https://app.example.com/path' }, /^CORS_ORIGINS/);
    refuses({ CORS_ORIGINS: '*' }, /^CORS_ORIGINS/);
    refuses({ AUTH_JWKS_URL: 'not a url', AUTH_ISSUER: 'x' }, /^AUTH_JWKS_URL/);
    refuses({ AUTH_JWKS_URL: 'http://idp.example.com/jwks', AUTH_ISSUER: 'x' }, /https/);
    refuses({ AUTH_JWKS_URL: 'https://idp.example.com/jwks' }, /^AUTH_ISSUER/);
  });

  test('dev mode: only on loopback, never with a JWKS URL, never half-configured', () => {
    refuses({ HOST: '0.0.0.0' }, /loopback/);
    refuses({ HOST: '192.168.1.5' }, /loopback/);
    refuses({ AUTH_DEV_MODE: '1', AUTH_JWKS_URL: 'https://idp.example.com/jwks', AUTH_ISSUER: 'x' }, /AUTH_DEV_MODE/);
    refuses({ AUTH_ISSUER: 'https://idp.example.com' }, /without AUTH_JWKS_URL/);
    expect(readServeConfig({ HOST: '::1' }).auth).toEqual({ mode: 'dev' });
  });
});

describe('the process', () => {
  let db: TestDatabase;
  let child: ChildProcess;
  let output = '';
  let base = '';

  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
    child = spawn(process.execPath, ['--import', 'tsx', 'src/http/serve.ts'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: db.url, PORT: '0', HOST: '127.0.0.1', DIRECT_URL: '', AUTH_JWKS_URL: '', AUTH_ISSUER: '', AUTH_AUDIENCE: '', CORS_ORIGINS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    base = await new Promise<string>((resolvePort, reject) => {
      const timer = setInterval(() => {
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
        if (m) {
          clearInterval(timer);
          resolvePort(m[1]!);
        } else if (child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error(`serve exited: ${output}`));
        }
      }, 100);
    });
  });
  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await db?.drop();
  });

  test('says dev mode loudly, migrates the empty database, and serves the API over TCP', async () => {
    expect(output).toContain('LOCAL DEV MODE');
    const { token, warning } = (await (await fetch(`${base}/dev/token`, { method: 'POST', body: JSON.stringify({ user: 'alice' }) })).json()) as { token: string; warning: string };
    expect(warning).toContain('DEV MODE');
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    expect((await fetch(`${base}/v1/health`)).status).toBe(200);
    expect((await fetch(`${base}/v1/vault`, { method: 'POST', headers: auth, body: JSON.stringify(envelopeBody().body) })).status).toBe(201);
    const push = await fetch(`${base}/v1/vault/push`, { method: 'POST', headers: auth, body: JSON.stringify({ changes: [{ recordId: 'a', baseVersion: 0, ciphertext: toBase64Url(randomBytes(16)) }] }) });
    expect(await push.json()).toMatchObject({ applied: [{ recordId: 'a', version: 1 }] });
    expect((await fetch(`${base}/dev/token`, { method: 'POST', body: JSON.stringify({ user: 'no spaces allowed' }) })).status).toBe(400);
  });

  test('SIGTERM, even repeated at once, finishes the request in flight, then exits 0', async () => {
    const { token } = (await (await fetch(`${base}/dev/token`, { method: 'POST', body: JSON.stringify({ user: 'alice' }) })).json()) as { token: string };
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      // Hold alice's vault row so her push waits inside the server, in flight.
      await holder.query('begin');
      await holder.query(`select 1 from vaults where user_id = 'dev:alice' for update`);
      const inFlight = fetch(`${base}/v1/vault/push`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ changes: [{ recordId: 'b', baseVersion: 0, ciphertext: toBase64Url(randomBytes(16)) }] }) });
      await waitUntil(async () => (await holder.query(`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`)).rows.length > 0, 'the push is waiting on the held vault row');
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      // Twice at once, as one Ctrl-C arrives under npm start (the terminal's, then npm's and tsx's relays).
      child.kill('SIGTERM');
      child.kill('SIGTERM');
      // The server has taken the signal (and stopped accepting) while the push still waits.
      await waitUntil(() => output.includes('SIGTERM: finishing'), 'the server says it is finishing on SIGTERM');
      await holder.query('commit');
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ applied: [{ recordId: 'b', version: 1 }] });
      expect(await exited).toBe(0);
      expect(output).toContain('stopped.');
    } finally {
      await holder.end();
    }
  });

  test('as the application role without VAULT_DB_CLAIM_KEY it refuses to start, in one line naming it', async () => {
    const role = await createAppRole(db);
    try {
      const run = spawn(process.execPath, ['--import', 'tsx', 'src/http/serve.ts'], {
        cwd: ROOT,
        env: { ...process.env, PORT: '0', DATABASE_URL: role.url, DIRECT_URL: db.url, VAULT_DB_CLAIM_KEY: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      run.stdout.on('data', (d: Buffer) => (out += d.toString()));
      run.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((r) => run.once('exit', r));
      expect(code, out).toBe(1);
      expect(out).not.toContain('listening on');
      expect(out.trim().split('\n')).toEqual([expect.stringMatching(/^vault-db serve: .*VAULT_DB_CLAIM_KEY/)]);
    } finally {
      await role.drop();
    }
  });

  test('a bad value stops it with one line and exit code 1', async () => {
    const run = spawn(process.execPath, ['--import', 'tsx', 'src/http/serve.ts'], { cwd: ROOT, env: { ...process.env, PORT: 'eighty', DATABASE_URL: db.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    run.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => run.once('exit', r));
    expect(code).toBe(1);
    expect(err.trim().split('\n')).toEqual([expect.stringMatching(/^vault-db serve: PORT must be/)]);
  });
});
