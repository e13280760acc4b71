/**
 * Which database failures are worth a retry. A killed backend, a dropped socket, a lock wait over
 * `lock_timeout`, a deadlock or a serialization failure all roll the whole transaction back, so
 * the caller can simply re-send the call.
 *
 * @module
 */
import { OptimisticLockError } from '@mikro-orm/core';
import { causeChain, isSqlState } from '../error-chain.js';
import { explainTlsFailure } from '../tls-failure.js';
import { ConfigurationError, DatabaseError, TransientError, VaultDbError } from '../errors.js';

const RETRYABLE_SQLSTATES: Record<string, string> = {
  '40001': 'a serialization failure',
  '40P01': 'a deadlock',
  '55P03': 'the vault lock was held by another call for longer than lockTimeoutMs',
  '57P01': 'the server terminated the connection',
  '57P02': 'the server terminated the connection',
  '57P03': 'the server is starting up or shutting down',
  '57014': 'the statement was cancelled',
  '53300': 'the server has too many connections',
};

const RETRYABLE_MESSAGES = [
  'Connection terminated',
  'connection terminated',
  'Client has encountered a connection error',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'Connection ended unexpectedly',
  'read ECONNRESET',
  // knex swallows a failed BEGIN (the connection died before the transaction started) and fails the
  // first statement of the callback with this instead; nothing was executed.
  'Transaction query already complete',
];

/**
 * No connection could be had from the pool: knex's acquire timeout (`KnexTimeoutError`, "Knex:
 * Timeout acquiring a connection"), a pool already destroyed, or pg-pool's own messages when an
 * application hands MikroORM a pg-pool. Nothing was sent to the database.
 */
const POOL_MESSAGES = [
  'Timeout acquiring a connection',
  'Unable to acquire a connection',
  'timeout exceeded when trying to connect',
  'Cannot use a pool after calling end on the pool',
];
const POOL_ERROR_NAMES: ReadonlySet<unknown> = new Set(['KnexTimeoutError']);

/** Node's codes for a connection that could not be made or was cut; no statement completed. */
const NETWORK_ERROR_CODES: ReadonlySet<unknown> = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * The retry hint of a call that found the pool exhausted, in ms: a pool stays full for about as
 * long as the calls that hold it, which wait for locks for up to lockTimeoutMs.
 */
export const POOL_RETRY_AFTER_MS = 1000;

/**
 * What may be kept of a driver error. MikroORM's exceptions start their message with the SQL and
 * its parameters, which may hold ciphertext, so only the SQLSTATE, the constraint, the table and
 * the server's own message (which never quotes parameters of these statements) survive.
 */
function sanitize(error: unknown): Error {
  const found = causeChain(error).find((e) => typeof (e as { code?: unknown }).code === 'string') ?? error;
  const e = found as { code?: string; constraint?: string; table?: string; routine?: string; name?: string; message?: string };
  // MikroORM's message is "<sql with parameters> - <server message>\n - detail: <detail>". The
  // detail of a check or not-null violation quotes the failing row (ciphertext included), so only
  // the first line's server message is kept.
  // split() always returns a first and a last element; String() only tells the type checker so.
  const firstLine = typeof e.message === 'string' ? String(e.message.split('\n')[0]) : '';
  const serverMessage = e.routine !== undefined ? String(firstLine.split(' - ').at(-1)) : '';
  const parts = [
    e.code ? `SQLSTATE/code ${e.code}` : (e.name ?? 'Error'),
    e.constraint ? `constraint ${e.constraint}` : '',
    e.table ? `table ${e.table}` : '',
    serverMessage,
  ].filter(Boolean);
  const safe = new Error(parts.join(', '));
  safe.name = 'DatabaseFailure';
  Object.assign(safe, { code: e.code });
  return safe;
}

/**
 * Maps a failure of a service call to the error the caller should see: the package's own errors
 * pass through, retryable database failures become {@link TransientError}, and any other database
 * failure becomes {@link DatabaseError}; both carry a sanitized cause. Anything else (a bug in
 * this package) is rethrown unchanged.
 */
export function classifyFailure(error: unknown): unknown {
  if (error instanceof VaultDbError) return error;
  // Every vault write holds the vault lock, so only a writer outside the service can race us
  // here; the transaction rolled back and a retry sees the new version.
  if (error instanceof OptimisticLockError) return new TransientError('A record changed under this call; retry it.', sanitize(error));
  let isDriverError = false;
  for (const e of causeChain(error)) {
    // A TLS or certificate problem won't go away on a retry: it is the URL's or the server's.
    const tls = explainTlsFailure(e);
    if (tls) return new ConfigurationError(`The database server ${tls}`, { cause: sanitize(error) });
    const code = (e as { code?: unknown }).code;
    const name = (e as { name?: unknown }).name;
    const text = (e as { message?: unknown }).message;
    if (POOL_ERROR_NAMES.has(name) || (typeof text === 'string' && POOL_MESSAGES.some((m) => text.includes(m)))) {
      return new TransientError(
        'No database connection was free in time (the pool is busy); nothing was sent to the database, and re-sending the call is safe.',
        sanitize(error),
        { retryAfterMs: POOL_RETRY_AFTER_MS },
      );
    }
    if (NETWORK_ERROR_CODES.has(code)) {
      return new TransientError(`The database connection failed (${String(code)}); the call applied completely or not at all, and re-sending it is safe.`, sanitize(error));
    }
    if (typeof code === 'string' && Object.hasOwn(RETRYABLE_SQLSTATES, code)) {
      return new TransientError(`The database call failed because ${RETRYABLE_SQLSTATES[code]}; it applied completely or not at all, and re-sending it is safe.`, sanitize(error));
    }
    if (typeof code === 'string' && code.startsWith('08')) {
      return new TransientError('The database connection failed; the call applied completely or not at all, and re-sending it is safe.', sanitize(error));
    }
    if (typeof text === 'string' && RETRYABLE_MESSAGES.some((m) => text.includes(m))) {
      return new TransientError('The database connection was lost; the call applied completely or not at all, and re-sending it is safe.', sanitize(error));
    }
    if (isSqlState(code)) isDriverError = true;
  }
  if (isDriverError) {
    const safe = sanitize(error);
    return new DatabaseError(`Unexpected database error (${safe.message}); nothing was written.`, safe);
  }
  return error;
}
