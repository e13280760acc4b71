/**
 * Error classification (src/sync/transient.ts) of failures built the way the drivers build them:
 * a server error as node-pg makes it, with knex's statement in front of its message, converted by
 * MikroORM's PostgreSqlExceptionConverter, and knex's own pool timeout. What the sanitized cause
 * keeps (SQLSTATE, constraint, table, the server's message) and drops (the statement, its
 * parameters, the DETAIL). The quick mutation run leaves this file out: importing these drivers
 * costs about 0.4 s in each of the per-run worker threads (see vitest.stryker.config.ts), and
 * test/unit/transient.test.ts and transient-rules.test.ts pin the same rules with hand-built
 * shapes.
 */
import { randomBytes } from 'node:crypto';
import { knex } from '@mikro-orm/knex';
import { PostgreSqlExceptionConverter } from '@mikro-orm/postgresql';
import pg from 'pg';
import { describe, expect, test } from 'vitest';
import { DatabaseError } from '../../src/errors.js';
import { classifyFailure, POOL_RETRY_AFTER_MS } from '../../src/sync/transient.js';
import { expectTransient } from '../support/transient.js';

/** A server error as node-pg builds it, after knex put the statement in front of the message, converted by MikroORM. */
function serverError(fields: { code: string; message: string; sql?: string; constraint?: string; table?: string; detail?: string }): Error {
  const raw = new pg.DatabaseError(`${fields.sql ?? 'select 1'} - ${fields.message}`, 0, 'error');
  Object.assign(raw, { code: fields.code, constraint: fields.constraint, table: fields.table, detail: fields.detail, routine: 'ereport', severity: 'ERROR' });
  return new PostgreSqlExceptionConverter().convertException(raw);
}

describe('server errors with a retryable SQLSTATE become TransientError', () => {
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
});

describe("knex's pool timeout becomes TransientError with a retry hint", () => {
  test("knex's KnexTimeoutError (the pool stayed full past the acquire timeout)", () => {
    const raw = new knex.KnexTimeoutError('Knex: Timeout acquiring a connection. The pool is probably full. Are you missing a .transacting(trx) call?');
    const error = expectTransient(classifyFailure(raw));
    expect(error.retryAfterMs).toBe(POOL_RETRY_AFTER_MS);
    expect(error.message).toContain('No database connection was free in time');
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
});
