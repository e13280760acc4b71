/**
 * Error classification (src/sync/transient.ts) without a database: which failures become a
 * retryable TransientError, which a DatabaseError, and which pass through untouched. Errors here
 * are built by hand; test/unit/transient-driver-errors.test.ts builds them as node-pg, knex and
 * MikroORM do, and the real failures behind these shapes are produced on PostgreSQL in
 * test/faults/ and test/security/no-secrets-in-errors.test.ts.
 */
import { OptimisticLockError } from '@mikro-orm/core';
import { describe, expect, test } from 'vitest';
import { ConfigurationError, DatabaseError, TransientError, ValidationError, VaultNotFoundError } from '../../src/errors.js';
import { classifyFailure, POOL_RETRY_AFTER_MS } from '../../src/sync/transient.js';
import { expectTransient } from '../support/transient.js';

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

  test.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED'])('a socket error with code %s', (code) => {
    const error = expectTransient(classifyFailure(Object.assign(new Error('connect failed somewhere'), { code })));
    expect(error.message).toContain(code);
  });

  test.each(['Connection terminated unexpectedly', 'Connection terminated due to connection timeout', 'Client has encountered a connection error and is not queryable'])('a lost connection: %s', (message) => {
    expectTransient(classifyFailure(new Error(message)));
  });
});

describe('pool and connection-acquire failures become TransientError with a retry hint', () => {
  test.each([
    'timeout exceeded when trying to connect',
    'Cannot use a pool after calling end on the pool',
    'Unable to acquire a connection',
    'Knex: Timeout acquiring a connection. The pool is probably full.',
  ])('a pool message: %s', (message) => {
    expect(expectTransient(classifyFailure(new Error(message))).retryAfterMs).toBe(POOL_RETRY_AFTER_MS);
  });
});

describe('other driver errors become DatabaseError', () => {
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
