/**
 * What the migrations runner says when a migration fails: which statement of how many, what the
 * server answered, what took effect, and whether running again is the fix (a lost connection or a
 * lock wait, {@link TransientError}) or not (a statement the server refused, {@link DatabaseError}).
 * These messages are the one thing an operator reads after a failed deploy, so they are built
 * here, apart from the runner's control flow, and tested clause by clause
 * (test/unit/migration-failures.test.ts).
 *
 * @module
 */
import { causeChain, isSqlState } from '../error-chain.js';
import { DatabaseError, TransientError, VaultDbError } from '../errors.js';

/** Longest excerpt of a failing statement quoted in an error message. */
export const STATEMENT_EXCERPT = 120;
/** Longest pause between two attempts of a migration that timed out waiting for a table lock. */
export const MAX_RETRY_DELAY_MS = 30_000;

/** Which way a migration ran. */
export type MigrationDirection = 'up' | 'down';

/** Whether a `lock_timeout` (SQLSTATE 55P03) ended the wait, anywhere in `error`'s cause chain. */
export function isLockTimeout(error: unknown): boolean {
  return causeChain(error).some((e) => (e as { code?: unknown }).code === '55P03');
}

/** An error's message, or the thrown value as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A migration's statement as SQL text: a string as it is, a knex builder through `toQuery()`. */
export function textOf(sql: unknown): string {
  return String((sql as { toQuery?: () => string }).toQuery?.() ?? sql);
}

/**
 * The server's own message of a failed statement, without the SQL MikroORM prefixes it with, and
 * its SQLSTATE. A network error's code (ECONNRESET) is not a SQLSTATE and is not labelled as one.
 */
export function serverMessage(error: unknown): string {
  const found = causeChain(error).find((e) => isSqlState((e as { code?: unknown }).code)) as { code?: string; message?: string } | undefined;
  const text = (found?.message ?? messageOf(error)).replace(/\n[\s\S]*/, '');
  const message = text.split(' - ').at(-1) ?? text;
  return found?.code ? `${message} (SQLSTATE ${found.code})` : message;
}

/** How a message about a lost connection begins. */
const LOST = 'The migration connection was lost';

const CONNECTION_LOST = /Connection terminated|connection error|ECONNRESET|EPIPE|Connection ended unexpectedly|terminating connection/i;

/** Whether the migration's connection went away (a dropped socket, or the server shutting down or crashing: 57P01 to 57P03). */
export function connectionLost(error: unknown): boolean {
  return causeChain(error).some((e) => CONNECTION_LOST.test(messageOf(e)) || ['57P01', '57P02', '57P03'].includes(String((e as { code?: unknown }).code)));
}

/**
 * The error for statement `index` (0-based) of `count` of migration `name` failing with `error`.
 * `transactional` says whether the statements before it were rolled back with it. A package error
 * passes through unchanged, and so does a lock timeout in a transaction (the caller retries the
 * whole migration); outside one, a lock timeout is a TransientError like a lost connection.
 */
export function statementFailed(name: string, method: MigrationDirection, index: number, count: number, sql: unknown, error: unknown, transactional: boolean): Error {
  if (error instanceof VaultDbError || (transactional && isLockTimeout(error))) return error as Error;
  const text = textOf(sql).replace(/\s+/g, ' ').trim();
  const statement = text.length > STATEMENT_EXCERPT ? `${text.slice(0, STATEMENT_EXCERPT)}…` : text;
  const where = `${name} ${method === 'up' ? '' : '(down) '}failed at statement ${index + 1} of ${count} (${statement}): ${serverMessage(error)}`;
  const outcome = transactional
    ? `its transaction was rolled back, so nothing of ${name} is ${method === 'up' ? 'applied' : 'reverted'}`
    : `it runs outside a transaction, so statements 1 to ${index} took effect; its statements must be safe to run again (IF NOT EXISTS, ...)`;
  return classified(`${where}; ${outcome}`, error, retryReason(error));
}

/** The error of a failed migration: TransientError when `retry` says why running again may succeed, else DatabaseError. */
function classified(what: string, error: unknown, retry: string | undefined): Error {
  return retry ? new TransientError(`${retry}: ${what}. Run the migrations again.`, error) : new DatabaseError(`Migration ${what}.`, error);
}

/**
 * Why running again may succeed: the connection went away, or (outside a transaction, where the
 * runner does not retry) a table lock was not free within the statement's lock_timeout.
 */
function retryReason(error: unknown): string | undefined {
  if (connectionLost(error)) return LOST;
  if (isLockTimeout(error)) return 'A table lock was not free in time';
  return undefined;
}

/** A failure of a migration's transaction outside its statements (at COMMIT, say); it rolled back. */
export function transactionFailed(name: string, method: MigrationDirection, error: unknown): unknown {
  if (error instanceof VaultDbError) return error;
  const where = `${name}${method === 'up' ? '' : ' (down)'} failed in its transaction (${serverMessage(error)}); it was rolled back, so nothing of ${name} is ${method === 'up' ? 'applied' : 'reverted'}`;
  // Inside a transaction a lock timeout never gets here: withLockRetries turns it into its own TransientError.
  return classified(where, error, connectionLost(error) ? LOST : undefined);
}

/**
 * A non-transactional migration's own `up()`/`down()` code failed (one of its `execute()` calls,
 * or a throw), before its queued statements ran. What its `execute()` calls wrote before that
 * took effect, and the migration is not recorded, so the next run executes it again.
 */
export function migrationCodeFailed(name: string, method: MigrationDirection, error: unknown): unknown {
  if (error instanceof VaultDbError) return error;
  const where = `${name}${method === 'up' ? '' : ' (down)'} failed in its ${method}() code (${serverMessage(error)}); it runs outside a transaction, so its execute() calls before the failure took effect, and it is not recorded`;
  return classified(where, error, retryReason(error));
}

/** Connection failures outside a statement (BEGIN, the lock, the journal) become TransientError; anything else passes through. */
export function asVaultDbError(error: unknown): unknown {
  if (error instanceof VaultDbError) return error;
  if (connectionLost(error)) return new TransientError(`${LOST} (${serverMessage(error)}); what was not reported as migrated is not applied. Run the migrations again.`, error);
  return error;
}

/** The pause before attempt `attempt + 1`: `baseMs` doubled for each attempt so far, at most {@link MAX_RETRY_DELAY_MS}. */
export function lockRetryDelayMs(baseMs: number, attempt: number): number {
  return Math.min(MAX_RETRY_DELAY_MS, baseMs * 2 ** (attempt - 1));
}

/** The log line of a table-lock wait that will be retried. */
export function lockRetryLine(what: string, timeoutMs: number, delayMs: number, attempt: number, attempts: number): string {
  return `${what}: a table lock was not free within ${timeoutMs} ms; retrying in ${delayMs} ms (attempt ${attempt + 1} of ${attempts})`;
}

/** The error once every attempt of `what` timed out waiting for a table lock; `done` lists the migrations applied before it. */
export function lockWaitsExhausted(what: string, timeoutMs: number, attempts: number, done: readonly string[], error: unknown): TransientError {
  const kept = done.length > 0 ? ` The migrations before it are applied: ${done.join(', ')}.` : '';
  return new TransientError(
    `${what} waited more than ${timeoutMs} ms for a table lock in each of ${attempts} attempts, so it was rolled back and nothing of it is applied: ` +
      `a long-running transaction holds the table (look for old xact_start or 'idle in transaction' in pg_stat_activity).${kept} Retry later.`,
    error,
  );
}
