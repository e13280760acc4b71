/**
 * Errors name record ids and rules, never secrets: no ciphertext, wrapped key, salt or database
 * password may appear in an error's message, its `String()`, the JSON of its own enumerable
 * properties, or (for errors with a `cause`, such as TransientError) anywhere along the cause chain.
 *
 * Every secret is made of distinctive bytes, and each is searched for in the forms a message could
 * carry it: hex (PostgreSQL's bytea output and SQL literals), base64, base64url, the raw bytes as
 * text, and the number list of `Buffer.toJSON()`, with slices from the start, middle and end so a
 * truncated echo is caught too.
 */
import { randomBytes } from 'node:crypto';
import { ref } from '@mikro-orm/core';
import { MikroORM } from '@mikro-orm/postgresql';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createConfig } from '../../src/config.js';
import { checkDatabaseReachable } from '../../src/database-url.js';
import { Vault } from '../../src/entities/vault.js';
import { VaultRecord } from '../../src/entities/vault-record.js';
import {
  ConfigurationError,
  DatabaseError,
  LimitExceededError,
  ResyncRequiredError,
  TransientError,
  ValidationError,
  VaultAlreadyEnabledError,
  VaultNotFoundError,
  VersionConflictError,
} from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { classifyFailure } from '../../src/sync/transient.js';
import { createAppRole, withLogin, type AppRole } from '../support/app-role.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';
import { pbkdf2 } from '../support/fixtures.js';
import { rejectionOf } from '../support/rejection.js';

/** Bytes no message could contain by chance: a marker, then random bytes. */
function secret(label: string, size: number): Buffer {
  const head = Buffer.from(`SECRET-${label}-`, 'latin1');
  return Buffer.concat([head, randomBytes(Math.max(0, size - head.length))]).subarray(0, size);
}

/** The text forms of `bytes` that would betray it, keyed by a name for the failure message. */
function needlesOf(name: string, bytes: Uint8Array): Record<string, string> {
  const b = Buffer.from(bytes);
  const mid = b.subarray(Math.floor(b.length / 2) - 6, Math.floor(b.length / 2) + 6);
  // PostgreSQL cuts each value of a DETAIL's "Failing row contains (...)" to 64 characters, so a
  // leaked value may be only its first bytes.
  const start = b.subarray(0, 12);
  const end = b.subarray(b.length - 12);
  return {
    [`${name} (hex)`]: b.toString('hex'),
    [`${name} (start, hex)`]: start.toString('hex'),
    [`${name} (end, hex)`]: end.toString('hex'),
    [`${name} (middle, hex)`]: mid.toString('hex'),
    [`${name} (middle, HEX)`]: mid.toString('hex').toUpperCase(),
    [`${name} (base64)`]: b.toString('base64'),
    [`${name} (base64url)`]: b.toString('base64url'),
    [`${name} (middle, base64)`]: mid.toString('base64').slice(0, 12),
    [`${name} (raw, latin1)`]: b.subarray(0, 12).toString('latin1'),
    [`${name} (Buffer.toJSON)`]: Array.from(mid).join(','),
  };
}

function safeJson(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return '[circular]';
        seen.add(v);
      }
      return v;
    }) ?? '';
  } catch (error) {
    return `(unserializable: ${String(error)})`;
  }
}

/** Every place an error's text can surface: for the error and each error in its cause chain. */
function surfaces(error: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  let e: unknown = error;
  for (let depth = 0; e !== undefined && e !== null && depth < 8; depth++, e = (e as { cause?: unknown }).cause) {
    const at = depth === 0 ? 'error' : `cause#${depth}`;
    out[`${at}.message`] = String((e as { message?: unknown }).message ?? '');
    out[`String(${at})`] = String(e);
    out[`JSON(${at} own enumerable props)`] = safeJson(e);
    out[`${at}.stack`] = String((e as { stack?: unknown }).stack ?? '');
  }
  return out;
}

/** The (surface, secret) pairs where a secret shows; [] when the error is clean. */
function leaks(error: unknown, needles: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [where, text] of Object.entries(surfaces(error))) {
    for (const [what, needle] of Object.entries(needles)) {
      if (needle.length > 0 && text.includes(needle)) found.push(`${what} in ${where}: ${text.slice(0, 600)}`);
    }
  }
  return found;
}

const A = `user_a_${randomBytes(4).toString('hex')}`;
let db: TestDatabase;
let role: AppRole;
let orm: MikroORM;
let owner: pg.Pool;
let sync: SyncService;
let passwordNeedles: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  role = await createAppRole(db);
  // The service logs in with a password, so a leak of its connection settings would show it.
  orm = await MikroORM.init(createConfig(role.url, { pool: { min: 0, max: 4 } }));
  owner = testPool(db.url, 3);
  sync = new SyncService(orm.em, { lockTimeoutMs: 30_000, claimKey: role.claimKey });
  passwordNeedles = { 'app role password': role.password, 'app role password (url-encoded)': encodeURIComponent(role.password) };
  await sync.enableVault(A, { wrappedKey: randomBytes(60), salt: randomBytes(16), kdfParams: pbkdf2 });
  await sync.push(A, { changes: [{ recordId: 'held', baseVersion: 0, ciphertext: randomBytes(32) }] });
});

afterAll(async () => {
  await orm?.close(true);
  await owner?.end();
  await role?.drop();
  await db?.drop();
});

describe('validation errors of pushes that carry ciphertext', () => {
  const ct = secret('CT', 96);
  const needles = () => ({ ...needlesOf('ciphertext', ct), ...passwordNeedles });
  const cases: [string, unknown][] = [
    ['a negative baseVersion', { changes: [{ recordId: 'r1', baseVersion: -1, ciphertext: ct }] }],
    ['a fractional baseVersion', { changes: [{ recordId: 'r1', baseVersion: 1.5, ciphertext: ct }] }],
    ['a delete that carries ciphertext', { changes: [{ recordId: 'r1', baseVersion: 1, deleted: true, ciphertext: ct }] }],
    ['duplicate ids', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: ct }, { recordId: 'r1', baseVersion: 0, ciphertext: ct }] }],
    ['a NUL in the record id', { changes: [{ recordId: 'r\u00001', baseVersion: 0, ciphertext: ct }] }],
    ['an over-long record id', { changes: [{ recordId: 'x'.repeat(300), baseVersion: 0, ciphertext: ct }] }],
    ['deleted neither true nor false', { changes: [{ recordId: 'r1', baseVersion: 0, deleted: 'yes', ciphertext: ct }] }],
    ['ciphertext as a hex string', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: ct.toString('hex') }] }],
    ['ciphertext as a base64 string', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: ct.toString('base64') }] }],
    ['ciphertext as a number array', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: Array.from(ct) }] }],
    ['ciphertext as Buffer JSON', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: ct.toJSON() }] }],
    ['ciphertext as a Uint16Array', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: new Uint16Array(Uint8Array.from(ct).buffer) }] }],
    ['a bad cursor type beside ciphertext', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: ct }], cursor: 42 }],
  ];
  it.each(cases)('%s', async (_name, input) => {
    const error = await rejectionOf(sync.push(A, input as never));
    expect(error).toBeInstanceOf(ValidationError);
    // The cases that smuggle the secret in as text must not get that text echoed either.
    const given = (input as { changes: { ciphertext?: unknown }[] }).changes[0]?.ciphertext;
    const asText: Record<string, string> = typeof given === 'string' ? { 'the ciphertext sent as text': given.slice(10, 40) } : {};
    expect(leaks(error, { ...needles(), ...asText })).toEqual([]);
  });

  it('a rotation with invalid records', async () => {
    const error = await rejectionOf(sync.rotateKey(A, {
      expectedVersion: 1,
      wrappedKey: randomBytes(60),
      salt: randomBytes(16),
      kdfParams: pbkdf2,
      records: [{ recordId: 'held', baseVersion: -3, ciphertext: ct }, { recordId: '', baseVersion: 1, ciphertext: ct }],
    }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(leaks(error, needles())).toEqual([]);
  });
});

describe('limit errors', () => {
  it('an oversized ciphertext in a push', async () => {
    const big = secret('BIG', sync.limits.maxRecordBytes + 1);
    const error = await rejectionOf(sync.push(A, { changes: [{ recordId: 'big', baseVersion: 0, ciphertext: big }] }));
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(leaks(error, needlesOf('oversized ciphertext', big))).toEqual([]);
  });

  it('an oversized ciphertext in a rotation', async () => {
    const big = secret('BIGROT', sync.limits.maxRecordBytes + 100);
    const wrappedKey = secret('WKROT', 60);
    const error = await rejectionOf(sync.rotateKey(A, { expectedVersion: 1, wrappedKey, salt: randomBytes(16), kdfParams: pbkdf2, records: [{ recordId: 'held', baseVersion: 1, ciphertext: big }] }));
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(leaks(error, { ...needlesOf('oversized ciphertext', big), ...needlesOf('wrapped key', wrappedKey) })).toEqual([]);
  });
});

describe('errors about the key envelope', () => {
  const wrappedKey = secret('WK', 60);
  const salt = secret('SALT', 20);
  const needles = () => ({ ...needlesOf('wrapped key', wrappedKey), ...needlesOf('salt', salt), ...passwordNeedles });
  const invalid: [string, Record<string, unknown>][] = [
    ['weak PBKDF2', { wrappedKey, salt, kdfParams: { ...pbkdf2, iterations: 1000, saltLength: 20 } }],
    ['a salt longer than saltLength says', { wrappedKey, salt, kdfParams: pbkdf2 }],
    ['a wrapped key too short', { wrappedKey: wrappedKey.subarray(0, 20), salt: salt.subarray(0, 16), kdfParams: pbkdf2 }],
    ['a wrapped key too long', { wrappedKey: Buffer.concat(Array.from({ length: 10 }, () => wrappedKey)), salt, kdfParams: { ...pbkdf2, saltLength: 20 } }],
    ['bytes given as strings', { wrappedKey: wrappedKey.toString('base64'), salt: salt.toString('hex'), kdfParams: pbkdf2 }],
    ['an unknown KDF', { wrappedKey, salt, kdfParams: { algorithm: 'scrypt', N: 16384, saltLength: 20 } }],
  ];
  it.each(invalid)('enableVault with %s', async (_name, input) => {
    const error = await rejectionOf(sync.enableVault(`fresh_${randomBytes(3).toString('hex')}`, input as never));
    expect(error).toBeInstanceOf(ValidationError);
    expect(leaks(error, needles())).toEqual([]);
  });
  it.each(invalid)('rewrapKey with %s', async (_name, input) => {
    const error = await rejectionOf(sync.rewrapKey(A, { expectedVersion: 1, ...input } as never));
    expect(error).toBeInstanceOf(ValidationError);
    expect(leaks(error, needles())).toEqual([]);
  });

  it('VaultAlreadyEnabledError', async () => {
    const error = await rejectionOf(sync.enableVault(A, { wrappedKey, salt, kdfParams: { ...pbkdf2, saltLength: 20 } }));
    expect(error).toBeInstanceOf(VaultAlreadyEnabledError);
    expect(leaks(error, needles())).toEqual([]);
  });

  it('VersionConflictError from a stale rewrapKey', async () => {
    const error = await rejectionOf(sync.rewrapKey(A, { expectedVersion: 99, wrappedKey, salt, kdfParams: { ...pbkdf2, saltLength: 20 } }));
    expect(error).toBeInstanceOf(VersionConflictError);
    expect(leaks(error, needles())).toEqual([]);
  });
});

describe('errors of pushes and rotations that conflict (conflicts themselves are data, and may hold ciphertext)', () => {
  const ct = secret('CONFLICT', 80);
  const wrappedKey = secret('WKC', 60);
  const salt = secret('SALTC', 16);
  const needles = () => ({ ...needlesOf('ciphertext', ct), ...needlesOf('wrapped key', wrappedKey), ...needlesOf('salt', salt), ...passwordNeedles });

  it('VersionConflictError from rotateKey at a stale envelope version', async () => {
    const error = await rejectionOf(sync.rotateKey(A, { expectedVersion: 42, wrappedKey, salt, kdfParams: pbkdf2, records: [{ recordId: 'held', baseVersion: 1, ciphertext: ct }] }));
    expect(error).toBeInstanceOf(VersionConflictError);
    expect(leaks(error, needles())).toEqual([]);
  });

  it('VersionConflictError from rotateKey over the wrong records (it names them, nothing else)', async () => {
    const version = (await sync.getVault(A))?.version as number;
    const error = await rejectionOf(sync.rotateKey(A, {
      expectedVersion: version,
      wrappedKey,
      salt,
      kdfParams: pbkdf2,
      records: [{ recordId: 'unknown-one', baseVersion: 1, ciphertext: ct }],
    }));
    expect(error).toBeInstanceOf(VersionConflictError);
    expect((error as Error).message).toContain('"held"');
    expect((error as Error).message).toContain('"unknown-one"');
    expect(leaks(error, needles())).toEqual([]);
  });

  it('ResyncRequiredError from a conflicting push with a forged cursor', async () => {
    const forged = Buffer.from(`v1.${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}.1`).toString('base64url');
    const error = await rejectionOf(sync.push(A, { changes: [{ recordId: 'held', baseVersion: 0, ciphertext: ct }], cursor: forged }));
    expect(error).toBeInstanceOf(ResyncRequiredError);
    expect(leaks(error, needles())).toEqual([]);
  });

  it('VaultNotFoundError from a push to a user without a vault', async () => {
    const error = await rejectionOf(sync.push(`ghost_${randomBytes(3).toString('hex')}`, { changes: [{ recordId: 'held', baseVersion: 0, ciphertext: ct }] }));
    expect(error).toBeInstanceOf(VaultNotFoundError);
    expect(leaks(error, needles())).toEqual([]);
  });

  it('a conflicting push throws nothing (its conflicts carry the server state, as data)', async () => {
    const result = await sync.push(A, { changes: [{ recordId: 'held', baseVersion: 0, ciphertext: ct }] });
    expect(result.conflicts.map((c) => c.reason)).toEqual(['exists']);
  });
});

describe('DatabaseError (a driver failure that is not retryable)', () => {
  it("keeps no part of a constraint violation's failing row, which holds the ciphertext", async () => {
    // A real violation through MikroORM's unit of work (the path of every push), as the owner: a
    // tombstone must have no content. PostgreSQL reports the row in its DETAIL, and MikroORM
    // appends that DETAIL to the message.
    const ct = secret('ROWDETAIL', 64);
    const vaultId = (await owner.query<{ id: string }>('select id from vaults where user_id = $1', [A])).rows[0]?.id as string;
    const ownerOrm = await MikroORM.init(createConfig(db.url, { pool: { min: 0, max: 1 } }));
    let raw: unknown;
    try {
      const record = new VaultRecord(ref(Vault, vaultId), A, 'row-detail', ct, 777_777);
      record.deleted = true;
      await ownerOrm.em.fork().persistAndFlush(record);
    } catch (error) {
      raw = error;
    } finally {
      await ownerOrm.close(true);
    }
    // The raw driver error does carry the row (else this test would prove nothing) ...
    expect(leaks(raw, needlesOf('ciphertext', ct)).length).toBeGreaterThan(0);
    // ... and what the service would throw must not.
    const error = classifyFailure(raw);
    expect(error).toBeInstanceOf(DatabaseError);
    expect(leaks(error, needlesOf('ciphertext', ct))).toEqual([]);
  });
});

describe('ConfigurationError from checkDatabaseReachable', () => {
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const needles = { password, 'password (url-encoded)': encodeURIComponent(password) };
  const at = (url: string) => ({ url, source: 'DATABASE_URL' as const });

  it('a database that does not exist', async () => {
    const url = new URL(withLogin(db.url, new URL(db.url).username || 'postgres', password));
    url.pathname = `/missing_${randomBytes(4).toString('hex')}`;
    const error = await rejectionOf(checkDatabaseReachable(at(url.toString())));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(leaks(error, needles)).toEqual([]);
  });

  it('a refused connection', async () => {
    const error = await rejectionOf(checkDatabaseReachable(at(`postgres://app:${password}@127.0.0.1:1/vault`)));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(leaks(error, needles)).toEqual([]);
  });

  it('a wrong password (only servers that check passwords reject it)', async () => {
    const url = withLogin(db.url, role.name, password);
    let error: unknown = null;
    try {
      await checkDatabaseReachable(at(url));
    } catch (e) {
      error = e;
    }
    // A trust-authentication server (the CI PostgreSQL 15) lets the login in: nothing to check then.
    if (error !== null) {
      expect(error).toBeInstanceOf(ConfigurationError);
      expect(leaks(error, needles)).toEqual([]);
    }
  });

  it('a password given as a query parameter (libpq and node-pg accept ?password=)', async () => {
    for (const url of [`postgres://app@127.0.0.1:1/vault?password=${password}`, `postgres://app@127.0.0.1:1/vault?sslmode=disable&password=${password}`]) {
      const error = await rejectionOf(checkDatabaseReachable(at(url)));
      expect(error).toBeInstanceOf(ConfigurationError);
      expect(leaks(error, needles)).toEqual([]);
    }
  });

  it('a URL the driver can not parse (port out of range) is a ConfigurationError too', async () => {
    const error = await rejectionOf(checkDatabaseReachable(at(`postgres://app:${password}@127.0.0.1:99999/vault`)));
    expect(leaks(error, needles)).toEqual([]);
    expect(error).toBeInstanceOf(ConfigurationError);
  });
});

describe('TransientError from a backend killed mid-push', () => {
  // What the stack logs meanwhile (knex prints "Connection Error: ..." when a pooled connection dies).
  let logged: string[] = [];
  beforeEach(() => {
    logged = [];
    for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        logged.push(args.map((a) => (typeof a === 'string' ? a : `${String(a)} ${safeJson(a)} ${String((a as { stack?: unknown } | null)?.stack ?? '')}`)).join(' '));
      });
    }
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  const logLeaks = (needles: Record<string, string>): string[] =>
    logged.flatMap((line) => Object.entries(needles).filter(([, n]) => line.includes(n)).map(([what]) => `${what} in a log line: ${line.slice(0, 600)}`));

  /**
   * Holds `lockSql` in a raw owner transaction, starts `push`, waits until the push's backend is
   * blocked behind the holder, kills that backend from a third connection, then releases.
   */
  async function killWhileBlocked(lockSql: string, params: unknown[], push: () => Promise<unknown>): Promise<unknown> {
    const holder = await owner.connect();
    try {
      await holder.query('begin');
      await holder.query(lockSql, params);
      const holderPid = Number((await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid);
      const outcome = push().then(
        () => new Error('the push was expected to fail'),
        (error: unknown) => error,
      );
      let victim: number | undefined;
      for (let i = 0; i < 200 && victim === undefined; i++) {
        const { rows } = await owner.query<{ pid: number }>('select pid from pg_stat_activity where $1 = any(pg_blocking_pids(pid))', [holderPid]);
        victim = rows[0]?.pid;
        if (victim === undefined) await new Promise((r) => setTimeout(r, 25));
      }
      expect(victim, 'the push never blocked behind the held lock').toBeDefined();
      await owner.query('select pg_terminate_backend($1)', [victim]);
      return await outcome;
    } finally {
      await holder.query('rollback').catch(() => {});
      holder.release();
    }
  }

  it('while the push waits for the vault row lock', async () => {
    const ct = secret('KILLVAULT', 120);
    const error = await killWhileBlocked('select 1 from vaults where user_id = $1 for update', [A], () =>
      sync.push(A, { changes: [{ recordId: 'killed-1', baseVersion: 0, ciphertext: ct }] }),
    );
    expect(error).toBeInstanceOf(TransientError);
    expect((error as TransientError).retryable).toBe(true);
    expect(leaks(error, { ...needlesOf('ciphertext', ct), ...passwordNeedles })).toEqual([]);
    expect(logLeaks({ ...needlesOf('ciphertext', ct), ...passwordNeedles })).toEqual([]);
    // The push applied nothing, and re-sending it works.
    await expect(sync.push(A, { changes: [{ recordId: 'killed-1', baseVersion: 0, ciphertext: ct }] })).resolves.toMatchObject({ conflicts: [] });
  });

  it('while the push waits to update a record row (the statement that carries the ciphertext)', async () => {
    const ct = secret('KILLUPDATE', 120);
    const version = (await sync.pull(A, {})).changes.find((c) => c.recordId === 'held')?.version as number;
    const error = await killWhileBlocked("select 1 from records where user_id = $1 and record_id = 'held' for update", [A], () =>
      sync.push(A, { changes: [{ recordId: 'held', baseVersion: version, ciphertext: ct }] }),
    );
    expect(error).toBeInstanceOf(TransientError);
    expect(leaks(error, { ...needlesOf('ciphertext', ct), ...passwordNeedles })).toEqual([]);
    expect(logLeaks({ ...needlesOf('ciphertext', ct), ...passwordNeedles })).toEqual([]);
  });

  it('while the push waits to insert a record (the insert that carries the ciphertext)', async () => {
    const ct = secret('KILLINSERT', 120);
    const vaultId = (await owner.query<{ id: string }>('select id from vaults where user_id = $1', [A])).rows[0]?.id;
    // An uncommitted row with the same (vault_id, record_id) makes the service's insert wait on the unique index.
    const error = await killWhileBlocked(
      `insert into records (user_id, vault_id, record_id, ciphertext, seq) values ($1, $2, 'racing', '\\x01', 999999)`,
      [A, vaultId],
      () => sync.push(A, { changes: [{ recordId: 'racing', baseVersion: 0, ciphertext: ct }] }),
    );
    expect(error).toBeInstanceOf(TransientError);
    expect(leaks(error, { ...needlesOf('ciphertext', ct), ...passwordNeedles })).toEqual([]);
    expect(logLeaks({ ...needlesOf('ciphertext', ct), ...passwordNeedles })).toEqual([]);
  });
});
