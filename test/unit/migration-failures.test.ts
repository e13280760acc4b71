/**
 * src/migrations-runner/failures.ts: what a failed migration run says, clause by clause. After a
 * failed deploy this text is all an operator has: which migration, which statement of how many,
 * what the server said, what took effect and whether running again is the fix. No database: the
 * errors have the shapes MikroORM and node-pg raise (the SQL-prefixed message, the SQLSTATE
 * `code`, the `cause` chain); test/migrations*.test.ts raise the real ones.
 */
import { describe, expect, test } from 'vitest';
import { ConfigurationError, DatabaseError, TransientError } from '../../src/errors.js';
import {
  asVaultDbError,
  connectionLost,
  isLockTimeout,
  lockRetryDelayMs,
  lockRetryLine,
  lockWaitsExhausted,
  MAX_RETRY_DELAY_MS,
  messageOf,
  migrationCodeFailed,
  serverMessage,
  statementFailed,
  STATEMENT_EXCERPT,
  textOf,
  transactionFailed,
} from '../../src/migrations-runner/failures.js';

/** An error as MikroORM raises it: the statement, " - ", the server's message, and the SQLSTATE. */
function serverError(message: string, code: string, sql = 'create table t (id int)'): Error {
  return Object.assign(new Error(`${sql} - ${message}\n    at Parser.parseErrorMessage`), { code });
}

const DUPLICATE = serverError('relation "t" already exists', '42P07');

describe('statementFailed', () => {
  test('a refused statement of a transactional migration: DatabaseError, nothing of it applied', () => {
    const error = statementFailed('Migration20990101000000', 'up', 1, 3, 'create   table\n  t (id int)', DUPLICATE, true);
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error.message).toBe(
      'Migration Migration20990101000000 failed at statement 2 of 3 (create table t (id int)): relation "t" already exists (SQLSTATE 42P07); ' +
        'its transaction was rolled back, so nothing of Migration20990101000000 is applied.',
    );
    expect(error.cause).toBe(DUPLICATE);
  });

  test('going down: "(down)" after the name, and nothing of it reverted', () => {
    expect(statementFailed('M1', 'down', 0, 1, 'drop table t', DUPLICATE, true).message).toBe(
      'Migration M1 (down) failed at statement 1 of 1 (drop table t): relation "t" already exists (SQLSTATE 42P07); ' +
        'its transaction was rolled back, so nothing of M1 is reverted.',
    );
  });

  test('outside a transaction: the statements before it took effect, and must be safe to run again', () => {
    expect(statementFailed('M2', 'up', 2, 4, 'create index concurrently i on t (id)', DUPLICATE, false).message).toBe(
      'Migration M2 failed at statement 3 of 4 (create index concurrently i on t (id)): relation "t" already exists (SQLSTATE 42P07); ' +
        'it runs outside a transaction, so statements 1 to 2 took effect; its statements must be safe to run again (IF NOT EXISTS, ...).',
    );
  });

  test(`the statement is quoted up to ${STATEMENT_EXCERPT} characters, whitespace collapsed, longer ones cut with an ellipsis`, () => {
    const exact = `select '${'x'.repeat(STATEMENT_EXCERPT - 9)}'`;
    expect(exact).toHaveLength(STATEMENT_EXCERPT);
    expect(statementFailed('M', 'up', 0, 1, `  ${exact}\n`, DUPLICATE, true).message).toContain(`(${exact}):`);
    const long = `${exact}x`;
    expect(statementFailed('M', 'up', 0, 1, long, DUPLICATE, true).message).toContain(`(${exact}…):`);
  });

  test('a knex builder is quoted as its SQL', () => {
    const builder = { toQuery: () => 'alter table t add column c int' };
    expect(statementFailed('M', 'up', 0, 1, builder, DUPLICATE, true).message).toContain('(alter table t add column c int):');
  });

  test('a lost connection: TransientError, with the same where and outcome, and "run again"', () => {
    const lost = new Error('insert into t - Connection terminated unexpectedly');
    const error = statementFailed('M3', 'up', 0, 2, 'insert into t values (1)', lost, true);
    expect(error).toBeInstanceOf(TransientError);
    expect(error.message).toBe(
      'The migration connection was lost: M3 failed at statement 1 of 2 (insert into t values (1)): Connection terminated unexpectedly; ' +
        'its transaction was rolled back, so nothing of M3 is applied. Run the migrations again.',
    );
    const outside = statementFailed('M3', 'down', 1, 2, 'drop index concurrently i', lost, false);
    expect(outside).toBeInstanceOf(TransientError);
    expect(outside.message).toBe(
      'The migration connection was lost: M3 (down) failed at statement 2 of 2 (drop index concurrently i): Connection terminated unexpectedly; ' +
        'it runs outside a transaction, so statements 1 to 1 took effect; its statements must be safe to run again (IF NOT EXISTS, ...). Run the migrations again.',
    );
  });

  test("the package's own errors and a lock timeout pass through unchanged (the caller retries the latter)", () => {
    const own = new ConfigurationError('refused');
    expect(statementFailed('M', 'up', 0, 1, 'select 1', own, true)).toBe(own);
    const lockTimeout = new Error('MikroORM', { cause: serverError('canceling statement due to lock timeout', '55P03') });
    expect(statementFailed('M', 'up', 0, 1, 'select 1', lockTimeout, true)).toBe(lockTimeout);
  });

  test('a lock timeout outside a transaction (not retried by the runner): TransientError, saying what took effect', () => {
    const lockTimeout = serverError('canceling statement due to lock timeout', '55P03');
    const error = statementFailed('M8', 'up', 1, 2, 'alter table t validate constraint c', lockTimeout, false);
    expect(error).toBeInstanceOf(TransientError);
    expect(error.message).toBe(
      'A table lock was not free in time: M8 failed at statement 2 of 2 (alter table t validate constraint c): canceling statement due to lock timeout (SQLSTATE 55P03); ' +
        'it runs outside a transaction, so statements 1 to 1 took effect; its statements must be safe to run again (IF NOT EXISTS, ...). Run the migrations again.',
    );
  });
});

describe('transactionFailed', () => {
  const commit = serverError('duplicate key value violates unique constraint "t_pkey"', '23505', 'commit');

  test('a failure outside the statements (at COMMIT): DatabaseError, rolled back', () => {
    const error = transactionFailed('M4', 'up', commit) as Error;
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error.message).toBe(
      'Migration M4 failed in its transaction (duplicate key value violates unique constraint "t_pkey" (SQLSTATE 23505)); it was rolled back, so nothing of M4 is applied.',
    );
    expect((transactionFailed('M4', 'down', commit) as Error).message).toBe(
      'Migration M4 (down) failed in its transaction (duplicate key value violates unique constraint "t_pkey" (SQLSTATE 23505)); it was rolled back, so nothing of M4 is reverted.',
    );
  });

  test('a lost connection: TransientError', () => {
    const error = transactionFailed('M4', 'down', serverError('terminating connection due to administrator command', '57P01', 'commit')) as Error;
    expect(error).toBeInstanceOf(TransientError);
    expect(error.message).toBe(
      'The migration connection was lost: M4 (down) failed in its transaction (terminating connection due to administrator command (SQLSTATE 57P01)); ' +
        'it was rolled back, so nothing of M4 is reverted. Run the migrations again.',
    );
  });

  test("the package's own errors pass through", () => {
    const own = new ConfigurationError('refused');
    expect(transactionFailed('M', 'up', own)).toBe(own);
  });
});

describe("migrationCodeFailed (a NonTransactionalMigration's own up()/down() code)", () => {
  test('DatabaseError: what its execute() calls did before the failure took effect, and it is not recorded', () => {
    const error = migrationCodeFailed('M7', 'up', serverError('division by zero', '22012', 'select 1 / 0')) as Error;
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error.message).toBe(
      'Migration M7 failed in its up() code (division by zero (SQLSTATE 22012)); it runs outside a transaction, so its execute() calls before the failure took effect, and it is not recorded.',
    );
    expect((migrationCodeFailed('M7', 'down', new Error('thrown by the migration')) as Error).message).toBe(
      'Migration M7 (down) failed in its down() code (thrown by the migration); it runs outside a transaction, so its execute() calls before the failure took effect, and it is not recorded.',
    );
  });

  test('a lost connection: TransientError; own errors and lock timeouts pass through', () => {
    const lost = migrationCodeFailed('M7', 'up', new Error('Connection terminated unexpectedly')) as Error;
    expect(lost).toBeInstanceOf(TransientError);
    expect(lost.message).toBe(
      'The migration connection was lost: M7 failed in its up() code (Connection terminated unexpectedly); it runs outside a transaction, so its execute() calls before the failure took effect, and it is not recorded. Run the migrations again.',
    );
    const own = new ConfigurationError('refused');
    expect(migrationCodeFailed('M7', 'up', own)).toBe(own);
    const lockTimeout = migrationCodeFailed('M7', 'up', serverError('canceling statement due to lock timeout', '55P03')) as Error;
    expect(lockTimeout).toBeInstanceOf(TransientError);
    expect(lockTimeout.message).toBe(
      'A table lock was not free in time: M7 failed in its up() code (canceling statement due to lock timeout (SQLSTATE 55P03)); it runs outside a transaction, so its execute() calls before the failure took effect, and it is not recorded. Run the migrations again.',
    );
  });
});

describe('asVaultDbError (failures outside a statement: BEGIN, the lock, the journal)', () => {
  test('a lost connection becomes TransientError; nothing unreported is applied', () => {
    const error = asVaultDbError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })) as Error;
    expect(error).toBeInstanceOf(TransientError);
    expect(error.message).toBe('The migration connection was lost (read ECONNRESET); what was not reported as migrated is not applied. Run the migrations again.');
  });

  test("the package's own errors and anything else pass through unchanged", () => {
    const own = new ConfigurationError('refused');
    expect(asVaultDbError(own)).toBe(own);
    // Already classified, over a lost connection: not wrapped a second time.
    const classified = new TransientError('The database connection failed (ECONNRESET).', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    expect(asVaultDbError(classified)).toBe(classified);
    const other = serverError('permission denied for schema public', '42501');
    expect(asVaultDbError(other)).toBe(other);
  });
});

describe('connectionLost', () => {
  test.each([
    'Connection terminated unexpectedly',
    'Connection terminated due to connection timeout',
    'connection error',
    'read ECONNRESET',
    'write EPIPE',
    'Connection ended unexpectedly',
    'terminating connection due to administrator command',
    'CONNECTION TERMINATED',
  ])('a driver message: %s', (message) => {
    expect(connectionLost(new Error(message))).toBe(true);
    expect(connectionLost(new Error('MikroORM', { cause: new Error(message) }))).toBe(true);
  });

  test.each(['57P01', '57P02', '57P03'])('the server shutting down or crashing: SQLSTATE %s, on any cause', (code) => {
    expect(connectionLost(Object.assign(new Error('shutdown'), { code }))).toBe(true);
    expect(connectionLost(new Error('outer', { cause: Object.assign(new Error('inner'), { code }) }))).toBe(true);
  });

  test('not a refused statement, a lock timeout, or SQLSTATE 57014 (a cancelled query)', () => {
    expect(connectionLost(DUPLICATE)).toBe(false);
    expect(connectionLost(serverError('canceling statement due to lock timeout', '55P03'))).toBe(false);
    expect(connectionLost(serverError('canceling statement due to user request', '57014'))).toBe(false);
    expect(connectionLost('a thrown string')).toBe(false);
  });
});

describe('serverMessage', () => {
  test("the server's first line without MikroORM's SQL prefix, and the SQLSTATE", () => {
    expect(serverMessage(DUPLICATE)).toBe('relation "t" already exists (SQLSTATE 42P07)');
  });

  test("a statement with ' - ' in it: the server's message is what follows the last one", () => {
    expect(serverMessage(serverError('division by zero', '22012', 'select 1 - 1 / 0'))).toBe('division by zero (SQLSTATE 22012)');
  });

  test('the message of the first error on the chain that has a code, not the outer wrapper', () => {
    const wrapped = new Error('outer wrapper', { cause: serverError('column "c" does not exist', '42703') });
    expect(serverMessage(wrapped)).toBe('column "c" does not exist (SQLSTATE 42703)');
  });

  test('without a code: the first line of the message, without the SQL prefix', () => {
    expect(serverMessage(new Error('select 1 - Connection terminated\nstack'))).toBe('Connection terminated');
    expect(serverMessage(new Error('plain message'))).toBe('plain message');
    expect(serverMessage('a thrown string')).toBe('a thrown string');
  });

  test("a network error's code is not called a SQLSTATE; a SQLSTATE deeper on the chain still is", () => {
    expect(serverMessage(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).toBe('write EPIPE');
    const deeper = Object.assign(new Error('outer'), { code: 'ECONNRESET', cause: serverError('terminating connection due to administrator command', '57P01') });
    expect(serverMessage(deeper)).toBe('terminating connection due to administrator command (SQLSTATE 57P01)');
  });
});

describe('the lock wait', () => {
  test('isLockTimeout: SQLSTATE 55P03 on the error or any cause', () => {
    expect(isLockTimeout(Object.assign(new Error('x'), { code: '55P03' }))).toBe(true);
    expect(isLockTimeout(new Error('outer', { cause: Object.assign(new Error('inner'), { code: '55P03' }) }))).toBe(true);
    expect(isLockTimeout(DUPLICATE)).toBe(false);
    expect(isLockTimeout(undefined)).toBe(false);
  });

  test(`the pause doubles from the base delay each attempt, up to ${MAX_RETRY_DELAY_MS} ms`, () => {
    expect([1, 2, 3, 4].map((attempt) => lockRetryDelayMs(250, attempt))).toEqual([250, 500, 1000, 2000]);
    expect(lockRetryDelayMs(20_000, 2)).toBe(MAX_RETRY_DELAY_MS);
    expect(lockRetryDelayMs(20_000, 1)).toBe(20_000);
  });

  test('the log line of a retried wait', () => {
    expect(lockRetryLine('Migration M5', 2000, 500, 1, 3)).toBe('Migration M5: a table lock was not free within 2000 ms; retrying in 500 ms (attempt 2 of 3)');
  });

  test('every attempt timed out: TransientError, naming the wait, the attempts and what is applied', () => {
    const cause = serverError('canceling statement due to lock timeout', '55P03');
    const first = lockWaitsExhausted('Migration M5', 2000, 3, [], cause);
    expect(first).toBeInstanceOf(TransientError);
    expect(first.cause).toBe(cause);
    expect(first.message).toBe(
      'Migration M5 waited more than 2000 ms for a table lock in each of 3 attempts, so it was rolled back and nothing of it is applied: ' +
        "a long-running transaction holds the table (look for old xact_start or 'idle in transaction' in pg_stat_activity). Retry later.",
    );
    expect(lockWaitsExhausted('Migration M6', 2000, 3, ['M4', 'M5'], cause).message).toContain(
      "in pg_stat_activity). The migrations before it are applied: M4, M5. Retry later.",
    );
  });
});

test('textOf and messageOf: SQL text and error text from whatever was given', () => {
  expect(textOf('select 1')).toBe('select 1');
  expect(textOf({ toQuery: () => 'select 2' })).toBe('select 2');
  expect(textOf({ toString: () => 'raw' })).toBe('raw');
  expect(textOf(42)).toBe('42');
  expect(messageOf(new Error('boom'))).toBe('boom');
  expect(messageOf({ message: 'not an Error' })).toBe('[object Object]');
  expect(messageOf(7)).toBe('7');
});
