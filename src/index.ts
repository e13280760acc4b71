/**
 * vault-db: the server-side data layer of an end-to-end-encrypted bookmark vault.
 * This file is the whole public surface (with `vault-db/embedded` for development); anything not
 * exported here is internal. Nothing imported from here starts a database server.
 *
 * @packageDocumentation
 */
export { Vault, VaultRecord, KeyRotation, StagedRecord, entities } from './entities/index.js';
export type { VaultRow, RecordRow, KeyRotationRow, StagedRecordRow } from './rows.js';
export {
  kdfParamsSchema,
  keyEnvelopeSchema,
  validateEnvelope,
  SALT_BYTES,
  WRAPPED_KEY_BYTES,
  PBKDF2_ITERATIONS,
  type KdfParams,
  type Pbkdf2Params,
  type Argon2idParams,
  type LegacyPbkdf2Params,
  type KeyEnvelope,
} from './envelope.js';
export { createConfig, vaultDbConfig, withVaultDb, FLUSH_BATCH_SIZE, MIGRATIONS_TABLE, VAULT_DB_TABLES } from './config.js';
export { migrationsList } from './migrations/index.js';
export { redactingLoggerFactory, redactBytea } from './log-redaction.js';
export { VaultDbDriver } from './records-driver.js';
export {
  resolveDatabaseUrl,
  resolveMigrationUrl,
  checkDatabaseReachable,
  parseDatabaseUrl,
  redactUrl,
  NO_DATABASE_URL,
  type DatabaseTarget,
  type DatabaseSource,
} from './database-url.js';
export {
  runMigrations,
  MIGRATION_LOCK_KEY,
  VaultDbMigrator,
  MigrationRefusedError,
  MIGRATOR_DEFAULTS,
  NonTransactionalMigration,
  type RunMigrationsOptions,
  type MigrationReport,
  type MigrationRunReport,
  type MigrationRefusal,
  type MigratorOptions,
  type UnknownMigrationsPolicy,
} from './migrate.js';
export {
  VaultDbError,
  VaultNotFoundError,
  VaultAlreadyEnabledError,
  VersionConflictError,
  StaleKeyError,
  RotationNotFoundError,
  ResyncRequiredError,
  ValidationError,
  LimitExceededError,
  TransientError,
  DatabaseError,
  ConfigurationError,
  PurgeIncompleteError,
  type VaultDbErrorCode,
  type RuleViolation,
  type RotationMismatch,
  type PurgeReport,
} from './errors.js';
export { isVaultDbError, type AnyVaultDbError, type VaultDbErrorByCode } from './error-guard.js';
export { SyncService } from './sync/sync-service.js';
export { DEFAULT_LOCK_TIMEOUT_MS, MAX_LOCK_TIMEOUT_MS, DEFAULT_MAX_CONCURRENT_CALLS_PER_VAULT } from './sync/options.js';
export { signClaim, claimMessage, CLAIM_KEY_BYTES, CLAIM_LIFETIME_SECONDS } from './sync/claim.js';
export { readClaimKey, rotateClaimKey, CLAIM_KEY_ENV, READ_CLAIM_KEY_SQL } from './sync/claim-key.js';
export {
  DEFAULT_LIMITS,
  type Change,
  type UpsertChange,
  type DeleteChange,
  type Conflict,
  type ConflictReason,
  type PushInput,
  type PushResult,
  type PullInput,
  type PullResult,
  type RecordState,
  type VaultInfo,
  type EnableVaultInput,
  type RewrapKeyInput,
  type RotateKeyInput,
  type ReencryptedRecord,
  type BeginKeyRotationInput,
  type StageKeyRotationInput,
  type CommitKeyRotationInput,
  type SyncLimits,
  type SyncServiceOptions,
} from './sync/types.js';
