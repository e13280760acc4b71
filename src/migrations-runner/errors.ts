/**
 * The one error class of the migration runner that is not a plain transient or configuration
 * failure: the runner refused to touch the schema because doing so could break it.
 *
 * @module
 */
import { VaultDbError } from '../errors.js';

/** Why the runner refused; each has its own fix (see {@link MigrationRefusedError}). */
export type MigrationRefusal =
  /** The database lists applied migrations this code doesn't have (it is ahead of the code). */
  | 'unknown_applied'
  /** An applied migration's statements changed since it was applied. */
  | 'checksum_mismatch'
  /** The URL goes through a transaction-mode pooler, declared or detected. */
  | 'pooled_url'
  /** A migration transaction ran on a session that does not hold the migration lock. */
  | 'lock_not_held'
  /** The journal lists a migration twice (an old race), so it can't be made unique. */
  | 'journal_duplicates'
  /** The options ask for something the runner can't do (an unknown name, a foreign transaction). */
  | 'invalid_request';

/**
 * The runner refused to migrate, and changed nothing (or nothing beyond the migrations it had
 * already committed, which the message names). Retrying without a fix gives the same answer.
 *
 * @example
 * ```ts
 * try { await runMigrations(); }
 * catch (e) { if (e instanceof MigrationRefusedError && e.reason === 'unknown_applied') alertOperator(e.message); }
 * ```
 */
export class MigrationRefusedError extends VaultDbError {
  readonly code = 'migration_refused' as const;
  constructor(
    /** Which rule stopped the run. */
    readonly reason: MigrationRefusal,
    message: string,
    /** The migrations concerned, by name, when there are any. */
    readonly migrations: readonly string[] = [],
  ) {
    super(message);
  }
}
