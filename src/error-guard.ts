/**
 * Narrowing of vault-db's errors by code: `VaultDbErrorByCode['stale_key']` is `StaleKeyError`,
 * and `isVaultDbError(e, 'stale_key')` narrows an unknown `e` to it, so `e.currentKeyVersion`
 * type-checks after the test. (`e.code === 'stale_key'` alone can't narrow: `VaultDbError` is an
 * abstract class, not a union.)
 *
 * @module
 */
import {
  type ConfigurationError,
  type DatabaseError,
  type LimitExceededError,
  type PurgeIncompleteError,
  type ResyncRequiredError,
  type RotationNotFoundError,
  type StaleKeyError,
  type TransientError,
  type ValidationError,
  type VaultAlreadyEnabledError,
  VaultDbError,
  type VaultNotFoundError,
  type VersionConflictError,
  type VaultDbErrorCode,
} from './errors.js';
import { type MigrationRefusedError } from './migrations-runner/errors.js';

/** The error class of each {@link VaultDbErrorCode}. */
export interface VaultDbErrorByCode {
  vault_not_found: VaultNotFoundError;
  vault_already_enabled: VaultAlreadyEnabledError;
  version_conflict: VersionConflictError;
  stale_key: StaleKeyError;
  rotation_not_found: RotationNotFoundError;
  resync_required: ResyncRequiredError;
  validation_failed: ValidationError;
  limit_exceeded: LimitExceededError;
  transient: TransientError;
  database: DatabaseError;
  configuration: ConfigurationError;
  purge_incomplete: PurgeIncompleteError;
  migration_refused: MigrationRefusedError;
}

/** Every error vault-db throws on purpose, as a union that `switch (e.code)` narrows. */
export type AnyVaultDbError = VaultDbErrorByCode[VaultDbErrorCode];

/**
 * Whether `error` is one of vault-db's errors (with `code`: that one), narrowing its type.
 *
 * @example
 * ```ts
 * catch (e) { if (isVaultDbError(e, 'version_conflict')) retryWith(e.conflicts); }
 * ```
 */
export function isVaultDbError(error: unknown): error is AnyVaultDbError;
export function isVaultDbError<C extends VaultDbErrorCode>(error: unknown, code: C): error is VaultDbErrorByCode[C];
export function isVaultDbError(error: unknown, code?: VaultDbErrorCode): boolean {
  return error instanceof VaultDbError && (code === undefined || error.code === code);
}
