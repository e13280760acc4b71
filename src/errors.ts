/**
 * Every error this package throws on purpose extends {@link VaultDbError} and carries a stable
 * `code`, so callers can branch on `err.code` without parsing messages. Messages name the record
 * and the rule that was broken, and never contain ciphertext, keys, salts or passwords.
 *
 * @module
 */

/** Stable machine-readable codes, one per error class (see the README's error table). */
export type VaultDbErrorCode =
  | 'vault_not_found'
  | 'vault_already_enabled'
  | 'version_conflict'
  | 'resync_required'
  | 'validation_failed'
  | 'limit_exceeded'
  | 'transient'
  | 'database'
  | 'configuration'
  | 'migration_refused';

/** Base class of every error this package throws on purpose. */
export abstract class VaultDbError extends Error {
  /** Stable code for programmatic handling. */
  abstract readonly code: VaultDbErrorCode;
  /** True when the same call may succeed if simply retried. */
  readonly retryable: boolean = false;

  protected constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = this.constructor.name;
  }
}

/**
 * The user has no vault (it was never enabled, or it was disabled).
 *
 * @example
 * ```ts
 * try { await sync.push(userId, { changes }); }
 * catch (e) { if (e instanceof VaultNotFoundError) showEnableVaultScreen(); }
 * ```
 */
export class VaultNotFoundError extends VaultDbError {
  readonly code = 'vault_not_found' as const;
  /** @param userId the user whose vault was looked up */
  constructor(readonly userId: string) {
    super(`No vault is enabled for user "${userId}".`);
  }
}

/** `enableVault` was called for a user who already has a vault. */
export class VaultAlreadyEnabledError extends VaultDbError {
  readonly code = 'vault_already_enabled' as const;
  /** @param userId the user who already has a vault */
  constructor(readonly userId: string) {
    super(`User "${userId}" already has a vault; use rewrapKey or rotateKey to change its key.`);
  }
}

/**
 * A write to the key envelope (`rewrapKey`, `rotateKey`) named a version that is no longer current,
 * or a rotation did not cover exactly the live records. Nothing was written.
 */
export class VersionConflictError extends VaultDbError {
  readonly code = 'version_conflict' as const;
  constructor(
    message: string,
    /** The envelope version the server holds now. */
    readonly currentVersion: number,
  ) {
    super(message);
  }

  /** The envelope moved on since the client read it. */
  static envelope(expected: number, current: number): VersionConflictError {
    return new VersionConflictError(
      `Vault envelope is at version ${current}, but the write expected version ${expected}; re-read the vault and retry.`,
      current,
    );
  }
}

/**
 * The cursor can't be continued: it belongs to another vault (or to a vault that was disabled and
 * enabled again), it is malformed or from the future, or tombstones it had not seen were purged.
 * The client must drop its cursor and do a full pull (`cursor: null`).
 */
export class ResyncRequiredError extends VaultDbError {
  readonly code = 'resync_required' as const;
  /** @param reason why the cursor can't be continued */
  constructor(readonly reason: string) {
    super(`Cursor can't be continued (${reason}); pull again with cursor null.`);
  }
}

/** One broken rule, as reported by {@link ValidationError} and {@link LimitExceededError}. */
export interface RuleViolation {
  /** The record the rule applies to, when there is one. */
  recordId?: string;
  /** Dotted path of the offending field, e.g. `changes.3.baseVersion`. */
  path: string;
  /** The rule, in words. */
  rule: string;
}

function describe(violations: readonly RuleViolation[]): string {
  const shown = violations.slice(0, 5).map((v) => {
    const where = v.recordId === undefined ? v.path : `record "${v.recordId}" (${v.path})`;
    return `${where}: ${v.rule}`;
  });
  const more = violations.length > 5 ? `; and ${violations.length - 5} more` : '';
  return shown.join('; ') + more;
}

/** Input broke a rule (type, range, format, duplicate id, weak KDF). Nothing was written. */
export class ValidationError extends VaultDbError {
  readonly code = 'validation_failed' as const;
  /** @param violations every rule the input broke */
  constructor(readonly violations: readonly RuleViolation[]) {
    super(`Invalid input: ${describe(violations)}.`);
  }
  /** The first offending record id, if any. */
  get recordId(): string | undefined {
    return this.violations.find((v) => v.recordId !== undefined)?.recordId;
  }
}

/** Input was well formed but over a configured limit (batch size, record size). Nothing was written. */
export class LimitExceededError extends VaultDbError {
  readonly code = 'limit_exceeded' as const;
  /** @param violations every limit the input broke */
  constructor(readonly violations: readonly RuleViolation[]) {
    super(`Limit exceeded: ${describe(violations)}.`);
  }
  /** The first offending record id, if any. */
  get recordId(): string | undefined {
    return this.violations.find((v) => v.recordId !== undefined)?.recordId;
  }
}

/**
 * The database connection failed, was killed, timed out waiting for the vault lock, or hit a
 * serialization failure. The transaction was rolled back as a whole, so re-sending the same call
 * is safe (pushes are idempotent).
 */
export class TransientError extends VaultDbError {
  readonly code = 'transient' as const;
  override readonly retryable = true;
  constructor(message: string, cause: unknown) {
    super(message, { cause });
  }
}

/**
 * The database rejected a statement for a reason that is not the caller's input and not worth a
 * retry: a bug or a schema out of date. The message keeps the SQLSTATE, constraint and table, but
 * never the statement's parameters, which may hold ciphertext.
 */
export class DatabaseError extends VaultDbError {
  readonly code = 'database' as const;
  constructor(message: string, cause: unknown) {
    super(message, { cause });
  }
}

/** The database configuration is unusable (malformed `DATABASE_URL`, unreachable server, ...). */
export class ConfigurationError extends VaultDbError {
  readonly code = 'configuration' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
