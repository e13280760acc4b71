/**
 * Error classification (src/sync/transient.ts) without a database: which failures become a
 * retryable TransientError, which a DatabaseError, and which pass through untouched, and what the
 * sanitized cause keeps (SQLSTATE, constraint, table, the server's message) and drops (the
 * statement, its parameters, the DETAIL). The real failures behind these shapes are produced on
 * PostgreSQL in test/faults/ and test/security/no-secrets-in-errors.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { OptimisticLockError } from '@mikro-orm/core';
import { knex } from '@mikro-orm/knex';
import { PostgreSqlExceptionConverter } from '@mikro-orm/postgresql';
import pg from 'pg';
import { describe, expect, test } from 'vitest';
import { ConfigurationError, DatabaseError, TransientError, ValidationError, VaultDbError, VaultNotFoundError } from '../../src/errors.js';
import { classifyFailure, POOL_RETRY_AFTER_MS } from '../../src/sync/transient.js';

/** A server error as node-pg builds it, after knex put the statement in front of the message, converted by MikroORM. */
function serverError(fields: { code: string; message: string; sql?: string; constraint?: string; table?: string; detail?: string }): Error {
  const raw = new pg.DatabaseError(`${fields.sql ?? 'select 1'} - ${fields.message}`, 0, 'error');
  Object.assign(raw, { code: fields.code, constraint: fields.constraint, table: fields.table, detail: fields.detail, routine: 'ereport', severity: 'ERROR' });
  return new PostgreSqlExceptionConverter().convertException(raw);
}

function expectTransient(error: unknown): TransientError {
  expect(error).toBeInstanceOf(TransientError);
  expect(error).toBeInstanceOf(VaultDbError);
  expect(error).toMatchObject({ code: 'transient', retryable: true });
  return error as TransientError;
}

describe("the package's own errors", () => {
  test.each([new VaultNotFoundError('u'), new ValidationError([{ path: 'x', rule: 'y' }]), new TransientError('t', null)])('%s passes through as the same object', (error) => {
    expect(classifyFailure(error)).toBe(error);
  });
});

describe('retryable failures become TransientError', () => {
  test('OptimisticLockError (a writer outside the service changed a record), with a cause that has no SQL', () => {
    const error = expectTransient(classifyFailure(new OptimisticLockError('The optimistic lock on entity VaultRecord failed: update "records" set "ciphertext" = E\'\\\\xdeadbeef\'')));
    expect(error.message).toContain('A record changed under this call');
    expect(String((error.cause as Error).message)).not.toContain('deadbeef');
  });

  test.each(['08000', '08003', '08006', '08001', '08004', '08P01'])('SQLSTATE class 08 (%s, connection exception) is a connection failure', (code) => {
    // A message no other rule knows, so only the class-08 rule can classify it.
    const error = expectTransient(classifyFailure(serverError({ code, message: 'protocol trouble' })));
    expect(error.message).toContain('The database connection failed');
    expect((error.cause as { code?: string }).code).toBe(code);
    expect(error.retryAfterMs).toBeUndefined();
  });

  test.each(['40001', '40P01', '55P03', '57P01', '57P02', '57P03', '57014', '53300'])('SQLSTATE %s', (code) => {
    const error = expectTransient(classifyFailure(serverError({ code, message: 'server says no' })));
    expect(error.message).toContain('re-sending it is safe');
  });

  test.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED'])('a socket error with code %s', (code) => {
    const error = expectTransient(classifyFailure(Object.assign(new Error('connect failed somewhere'), { code })));
    expect(error.message).toContain(code);
  });

  test.each(['Connection terminated unexpectedly', 'Connection terminated due to connection timeout', 'Client has encountered a connection error and is not queryable'])('a lost connection: %s', (message) => {
    expectTransient(classifyFailure(new Error(message)));
  });
});

describe('pool and connection-acquire failures become TransientError with a retry hint', () => {
  test("knex's KnexTimeoutError (the pool stayed full past the acquire timeout)", () => {
    const raw = new knex.KnexTimeoutError('Knex: Timeout acquiring a connection. The pool is probably full. Are you missing a .transacting(trx) call?');
    const error = expectTransient(classifyFailure(raw));
    expect(error.retryAfterMs).toBe(POOL_RETRY_AFTER_MS);
    expect(error.message).toContain('No database connection was free in time');
  });

  test.each([
    'timeout exceeded when trying to connect',
    'Cannot use a pool after calling end on the pool',
    'Unable to acquire a connection',
    'Knex: Timeout acquiring a connection. The pool is probably full.',
  ])('a pool message: %s', (message) => {
    expect(expectTransient(classifyFailure(new Error(message))).retryAfterMs).toBe(POOL_RETRY_AFTER_MS);
  });

  test('a pool failure wrapped as the cause of another error', () => {
    const wrapped = new Error('flush failed', { cause: new knex.KnexTimeoutError('Knex: Timeout acquiring a connection.') });
    expect(expectTransient(classifyFailure(wrapped)).retryAfterMs).toBe(POOL_RETRY_AFTER_MS);
  });
});

describe('other driver errors become DatabaseError, with a sanitized cause', () => {
  const ciphertext = randomBytes(24);
  const hex = ciphertext.toString('hex');
  const violation = () =>
    serverError({
      code: '23505',
      sql: `insert into "records" ("ciphertext") values (E'\\\\x${hex}')`,
      message: 'duplicate key value violates unique constraint "records_vault_id_record_id_unique"',
      constraint: 'records_vault_id_record_id_unique',
      table: 'records',
      detail: `Key (vault_id, record_id)=(v, ${hex}) already exists.`,
    });

  test('the cause keeps the SQLSTATE, the constraint, the table and the server message', () => {
    const error = classifyFailure(violation());
    expect(error).toBeInstanceOf(DatabaseError);
    const cause = (error as DatabaseError).cause as Error & { code?: string };
    expect(cause.name).toBe('DatabaseFailure');
    expect(cause.code).toBe('23505');
    expect(cause.message).toBe('SQLSTATE/code 23505, constraint records_vault_id_record_id_unique, table records, duplicate key value violates unique constraint "records_vault_id_record_id_unique"');
    expect((error as DatabaseError).message).toContain(cause.message);
  });

  test('and drops the statement, its parameters and the DETAIL (which quotes the row)', () => {
    const raw = violation();
    expect(raw.message).toContain(hex);
    const error = classifyFailure(raw) as DatabaseError;
    for (const text of [error.message, String(error.cause), JSON.stringify(error.cause), (error.cause as Error).stack ?? '']) {
      expect(text).not.toContain(hex);
      expect(text).not.toContain('insert into');
      expect(text).not.toContain('detail');
    }
  });

  test('a driver error further down the cause chain is found too', () => {
    const error = classifyFailure(new Error('outer', { cause: serverError({ code: '22P02', message: 'invalid input syntax for type uuid' }) }));
    expect(error).toBeInstanceOf(DatabaseError);
    expect(((error as DatabaseError).cause as Error).message).toContain('SQLSTATE/code 22P02');
  });

  test('a bare error with a SQLSTATE-shaped code counts as a driver error', () => {
    const error = classifyFailure(Object.assign(new Error('x'), { code: 'XX000' }));
    expect(error).toBeInstanceOf(DatabaseError);
  });
});

describe('anything that is not a driver error is rethrown unchanged (a bug must stay visible)', () => {
  test.each([
    ['a TypeError', new TypeError('x is not a function')],
    ["a Node code that is not a SQLSTATE", Object.assign(new Error('bad arg'), { code: 'ERR_INVALID_ARG_TYPE' })],
    ['a lower-case five-letter code', Object.assign(new Error('y'), { code: 'abcde' })],
    ['a four-character code', Object.assign(new Error('y'), { code: '2350' })],
    ['a six-character code', Object.assign(new Error('y'), { code: '235050' })],
    ['a numeric code', Object.assign(new Error('y'), { code: 23505 })],
  ])('%s', (_label, error) => {
    expect(classifyFailure(error)).toBe(error);
  });

  test('a non-error value', () => {
    expect(classifyFailure('boom')).toBe('boom');
    expect(classifyFailure(undefined)).toBeUndefined();
  });
});

describe('TLS and certificate failures become ConfigurationError (a retry cannot help)', () => {
  const tlsFailure = (code: string | undefined, message: string) => Object.assign(new Error(message), code === undefined ? {} : { code });
  test.each([
    ['SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain', 'a CA this process does not trust'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate', 'a CA this process does not trust'],
    ['CERT_HAS_EXPIRED', 'certificate has expired', 'presented an expired certificate'],
    ['CERT_NOT_YET_VALID', 'certificate is not yet valid', 'not valid yet'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list: 127.0.0.1", 'another host name (IP: 127.0.0.2'],
    [undefined, 'The server does not support SSL connections', 'does not offer TLS'],
    [undefined, 'SSL required', 'accepts only encrypted connections'],
    ['28000', 'no pg_hba.conf entry for host "127.0.0.1", user "u", database "d", no encryption', 'accepts only encrypted connections'],
  ])('%s (%s)', (code, message, words) => {
    // Wrapped the way knex and MikroORM hand it over: the TLS error is a cause further down.
    const error = classifyFailure(Object.assign(new Error('connect failed'), { cause: tlsFailure(code, message) }));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/^The database server /);
    expect((error as Error).message).toContain(words);
  });

  test('a 28000 without "no encryption" is a login problem, not a TLS one: a DatabaseError', () => {
    expect(classifyFailure(tlsFailure('28000', 'role "u" is not permitted to log in'))).toBeInstanceOf(DatabaseError);
  });
});
