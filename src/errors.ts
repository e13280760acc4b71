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
  | 'stale_key'
  | 'rotation_not_found'
  | 'resync_required'
  | 'validation_failed'
  | 'limit_exceeded'
  | 'transient'
  | 'database'
  | 'configuration'
  | 'purge_incomplete'
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
 * How a rotation's records differ from the vault's live records. Every id is listed, so a staged
 * rotation can re-stage (or remove) exactly these and commit again.
 */
export interface RotationMismatch {
  /** Live records the rotation does not re-encrypt. */
  missing: readonly string[];
  /** Records the rotation re-encrypts that are not live (deleted, purged, or never created). */
  unknown: readonly string[];
  /** Records whose `baseVersion` is not the live record's current version. */
  stale: readonly string[];
}

/**
 * A write to the key envelope (`rewrapKey`, `rotateKey`, the staged rotation calls) named a
 * version that is no longer current, or a rotation did not cover exactly the live records at
 * their current versions (`mismatch` says how). Nothing was written.
 */
export class VersionConflictError extends VaultDbError {
  readonly code = 'version_conflict' as const;
  constructor(
    message: string,
    /** The envelope version the server holds now. */
    readonly currentVersion: number,
    /** For a rotation that does not match the live records: which records differ. */
    readonly mismatch?: RotationMismatch,
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
 * A push carries ciphertext encrypted under a vault key that is no longer current: the vault's key
 * was rotated (`keyVersion` is older than the vault's), or the push did not say which key it used
 * although the vault has been rotated. Nothing was written. The device must fetch the vault
 * (`getVault`), unwrap the new key, pull, re-encrypt its pending changes and push again.
 */
export class StaleKeyError extends VaultDbError {
  readonly code = 'stale_key' as const;
  constructor(
    /** The key version the push named, or null when it named none. */
    readonly keyVersion: number | null,
    /** The vault's current key version. */
    readonly currentKeyVersion: number,
  ) {
    super(
      keyVersion === null
        ? `The vault's key was rotated (key version ${currentKeyVersion}); a push carrying ciphertext must name the key version it was encrypted under (keyVersion). Nothing was written.`
        : `The push was encrypted under key version ${keyVersion}, but the vault's current key version is ${currentKeyVersion}; fetch the vault, re-encrypt and push again. Nothing was written.`,
    );
  }
}

/**
 * The staged key rotation named by `rotationId` does not exist (any more): it was committed,
 * aborted, replaced by a later `beginKeyRotation`, or belongs to another vault. Begin a new one.
 */
export class RotationNotFoundError extends VaultDbError {
  readonly code = 'rotation_not_found' as const;
  /** @param rotationId the id the caller named */
  constructor(readonly rotationId: string) {
    super(`No staged key rotation "${rotationId}" is open for this vault (committed, aborted or replaced by a later beginKeyRotation); begin a new one.`);
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
  /**
   * When set, how long to wait before re-sending, in ms: a hint, given when retrying at once would
   * only meet the same condition (too many calls of this vault in flight, the pool exhausted).
   */
  readonly retryAfterMs?: number;
  constructor(message: string, cause: unknown, options: { retryAfterMs?: number } = {}) {
    super(message, { cause });
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
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

/** What `purgeTombstones` did. */
export interface PurgeReport {
  /** Tombstones removed, over all vaults. */
  purged: number;
  /** Vaults purged (each in a transaction of its own). */
  vaults: number;
  /** Vaults left as they were, with the reason (for example: locked longer than `lockTimeoutMs`). */
  skipped: { userId: string; reason: string }[];
}

/**
 * A purge of every vault stopped at a vault with an error that is not worth skipping (a bug, a
 * schema not migrated). The vaults in `done` stay purged: each was purged in a transaction of its
 * own; the failing vault and those after it were not touched.
 */
export class PurgeIncompleteError extends VaultDbError {
  readonly code = 'purge_incomplete' as const;
  constructor(
    /** What was purged before the failure. */
    readonly done: PurgeReport,
    /** The user whose vault failed. */
    readonly userId: string,
    cause: unknown,
  ) {
    super(
      `Purging tombstones stopped at the vault of user "${userId}": ${cause instanceof Error ? cause.message : String(cause)} ` +
        `Before it, ${done.purged} tombstones were purged in ${done.vaults} vaults (${done.skipped.length} skipped); those stay purged, and the rest was not touched.`,
      { cause },
    );
  }
}

/** The database configuration is unusable (malformed `DATABASE_URL`, unreachable server, ...). */
export class ConfigurationError extends VaultDbError {
  readonly code = 'configuration' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
