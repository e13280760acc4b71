/**
 * The rest of the error classification of src/sync/transient.ts, rule by rule, found by mutation
 * testing: every retryable SQLSTATE with its reason, every lost-connection message, a pool
 * failure known by its error name alone, how deep the cause chain is searched, and exactly what
 * the sanitized cause keeps in each case. test/unit/transient.test.ts covers the main shapes.
 */
import { OptimisticLockError } from '@mikro-orm/core';
import { describe, expect, test } from 'vitest';
import { ConfigurationError, DatabaseError, TransientError } from '../../src/errors.js';
import { classifyFailure, POOL_RETRY_AFTER_MS } from '../../src/sync/transient.js';

/** A driver error as node-pg shapes it, without MikroORM's wrapper. */
const driverError = (code: string, message = 'server says no', fields: Record<string, unknown> = {}) => Object.assign(new Error(message), { code, ...fields });

function transient(error: unknown): TransientError {
  const classified = classifyFailure(error);
  expect(classified).toBeInstanceOf(TransientError);
  return classified as TransientError;
}

/** The sanitized cause: its message, name and code. */
const causeOf = (error: Error) => {
  const cause = error.cause as Error & { code?: string };
  return { message: cause.message, name: cause.name, code: cause.code };
};

describe('each retryable SQLSTATE names its reason', () => {
  test.each([
    ['40001', 'a serialization failure'],
    ['40P01', 'a deadlock'],
    ['55P03', 'the vault lock was held by another call for longer than lockTimeoutMs'],
    ['57P01', 'the server terminated the connection'],
    ['57P02', 'the server terminated the connection'],
    ['57P03', 'the server is starting up or shutting down'],
    ['57014', 'the statement was cancelled'],
    ['53300', 'the server has too many connections'],
  ])('%s: %s', (code, reason) => {
    const error = transient(driverError(code));
    expect(error.message).toBe(`The database call failed because ${reason}; it applied completely or not at all, and re-sending it is safe.`);
    expect(error.retryAfterMs).toBeUndefined();
    expect(causeOf(error)).toEqual({ message: `SQLSTATE/code ${code}`, name: 'DatabaseFailure', code });
  });

  test('a code that only shares a prefix with a retryable one is not retryable', () => {
    expect(classifyFailure(driverError('40002'))).toBeInstanceOf(DatabaseError);
    expect(classifyFailure(driverError('57P04'))).toBeInstanceOf(DatabaseError);
  });

  test('an own property of Object.prototype is not a retryable SQLSTATE', () => {
    const error = Object.assign(new Error('x'), { code: 'constructor' });
    expect(classifyFailure(error)).toBe(error);
  });
});

describe('a class 08 SQLSTATE is a connection failure; a code merely containing 08 is not', () => {
  test('08003', () => {
    const error = transient(driverError('08003'));
    expect(error.message).toBe('The database connection failed; the call applied completely or not at all, and re-sending it is safe.');
  });

  test.each(['XX080', '10800', '28000'])('%s is a DatabaseError', (code) => {
    expect(classifyFailure(driverError(code, 'no'))).toBeInstanceOf(DatabaseError);
  });
});

describe('every lost-connection message', () => {
  test.each([
    'Connection terminated',
    'connection terminated by the server',
    'Client has encountered a connection error and is not queryable',
    'write ECONNRESET',
    'connect ECONNREFUSED 127.0.0.1:5432',
    'This socket has been ended by the other party: EPIPE',
    'Connection ended unexpectedly',
    'read ECONNRESET',
    'Transaction query already complete, run with DEBUG=knex:tx for more info',
  ])('%s', (message) => {
    const error = transient(new Error(message));
    expect(error.message).toBe('The database connection was lost; the call applied completely or not at all, and re-sending it is safe.');
    expect(error.retryAfterMs).toBeUndefined();
    // Not a driver error: no code, so the cause is named by the error's name.
    expect(causeOf(error)).toEqual({ message: 'Error', name: 'DatabaseFailure', code: undefined });
  });

  test('a message that merely resembles one is rethrown unchanged', () => {
    const error = new Error('connection was fine');
    expect(classifyFailure(error)).toBe(error);
  });
});

describe('network error codes', () => {
  test('the message names the code, and the cause keeps it', () => {
    const error = transient(driverError('ECONNRESET', 'socket hang up'));
    expect(error.message).toBe('The database connection failed (ECONNRESET); the call applied completely or not at all, and re-sending it is safe.');
    expect(causeOf(error)).toEqual({ message: 'SQLSTATE/code ECONNRESET', name: 'DatabaseFailure', code: 'ECONNRESET' });
  });
});

describe('pool failures', () => {
  test('a KnexTimeoutError is known by its name, whatever its message', () => {
    const error = transient(Object.assign(new Error('something timed out'), { name: 'KnexTimeoutError' }));
    expect(error.retryAfterMs).toBe(POOL_RETRY_AFTER_MS);
    expect(error.message).toBe('No database connection was free in time (the pool is busy); nothing was sent to the database, and re-sending the call is safe.');
    expect(causeOf(error)).toEqual({ message: 'KnexTimeoutError', name: 'DatabaseFailure', code: undefined });
  });

  test('the retry hint is one second', () => {
    expect(POOL_RETRY_AFTER_MS).toBe(1000);
  });

  test('another error name with an unknown message is not a pool failure', () => {
    const error = Object.assign(new Error('something timed out'), { name: 'TimeoutError' });
    expect(classifyFailure(error)).toBe(error);
  });
});

describe('the cause chain', () => {
  const wrap = (inner: unknown, depth: number): unknown => {
    let error = inner;
    for (let i = 0; i < depth; i++) error = new Error(`wrapper ${i}`, { cause: error });
    return error;
  };

  test('a driver error seven causes down is found; eight down is not (the search is bounded)', () => {
    expect(classifyFailure(wrap(driverError('40001'), 7))).toBeInstanceOf(TransientError);
    const deep = wrap(driverError('40001'), 8);
    expect(classifyFailure(deep)).toBe(deep);
  });

  test('the sanitized cause is the innermost error with a code, not the wrapper', () => {
    const error = classifyFailure(new Error('outer', { cause: driverError('23503', 'insert or update violates foreign key', { constraint: 'records_vault_id_foreign', table: 'records' }) }));
    expect(error).toBeInstanceOf(DatabaseError);
    expect(causeOf(error as Error)).toEqual({ message: 'SQLSTATE/code 23503, constraint records_vault_id_foreign, table records', name: 'DatabaseFailure', code: '23503' });
    expect((error as Error).message).toBe('Unexpected database error (SQLSTATE/code 23503, constraint records_vault_id_foreign, table records); nothing was written.');
  });

  test('a wrapper with a numeric code does not hide the driver error under it', () => {
    const error = classifyFailure(Object.assign(new Error('outer', { cause: driverError('40001') }), { code: 42 }));
    expect(error).toBeInstanceOf(TransientError);
    expect(((error as Error).cause as { code?: string }).code).toBe('40001');
  });
});

describe('what the sanitized cause keeps of a server message', () => {
  test("only the server's message after the last ' - ' of the first line, and only for a server error (one with a routine)", () => {
    const withRoutine = driverError('22001', 'insert into "records" values ($1) - value too long for type character varying(255)\n - detail: secret', { routine: 'varchar' });
    expect(causeOf(classifyFailure(withRoutine) as Error).message).toBe('SQLSTATE/code 22001, value too long for type character varying(255)');
    const withoutRoutine = driverError('22001', 'insert into "records" values ($1) - value too long');
    expect(causeOf(classifyFailure(withoutRoutine) as Error).message).toBe('SQLSTATE/code 22001');
  });

  test('an OptimisticLockError keeps its name only, never the statement', () => {
    const error = transient(new OptimisticLockError('The optimistic lock on entity VaultRecord failed: update "records" set x = 1'));
    expect(error.message).toBe('A record changed under this call; retry it.');
    expect(causeOf(error)).toEqual({ message: 'OptimisticLockError', name: 'DatabaseFailure', code: undefined });
  });

  test('a TLS failure keeps the sanitized outer error as its cause', () => {
    const error = classifyFailure(Object.assign(new Error('connect failed'), { cause: Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }) }));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(causeOf(error as Error)).toEqual({ message: 'SQLSTATE/code CERT_HAS_EXPIRED', name: 'DatabaseFailure', code: 'CERT_HAS_EXPIRED' });
  });
});

describe('edge shapes found by the quick mutation run', () => {
  test("the package's own error passes through even when its cause is a driver error", () => {
    const own = new DatabaseError('x', driverError('40001'));
    expect(classifyFailure(own)).toBe(own);
  });

  test('null and a numeric SQLSTATE-like code are rethrown unchanged', () => {
    expect(classifyFailure(null)).toBeNull();
    const numeric = Object.assign(new Error('x'), { code: 40001 });
    expect(classifyFailure(numeric)).toBe(numeric);
  });

  test('a failure with neither a code nor a name is named "Error" in the sanitized cause', () => {
    const error = transient({ message: 'Knex: Timeout acquiring a connection. The pool is probably full.' });
    expect(error.retryAfterMs).toBe(POOL_RETRY_AFTER_MS);
    expect(causeOf(error)).toEqual({ message: 'Error', name: 'DatabaseFailure', code: undefined });
  });

  test('a driver error without a message is still sanitized', () => {
    const error = classifyFailure({ code: '23505', routine: 'x' });
    expect(error).toBeInstanceOf(DatabaseError);
    expect(causeOf(error as Error).message).toBe('SQLSTATE/code 23505');
  });

  test("the server's message is the part after the last ' - ', even when the statement holds one", () => {
    const error = classifyFailure(driverError('22012', 'select 1 - 1 - division by zero', { routine: 'int4div' }));
    expect(causeOf(error as Error).message).toBe('SQLSTATE/code 22012, division by zero');
  });
});

