/**
 * vault-db: the server-side data layer of an end-to-end-encrypted bookmark vault.
 * This file is the whole public surface; anything not exported here is internal.
 *
 * @packageDocumentation
 */
export { Vault, VaultRecord, entities } from './entities/index.js';
export type { VaultRow, RecordRow } from './rows.js';
export {
  kdfParamsSchema,
  keyEnvelopeSchema,
  validateEnvelope,
  SALT_BYTES,
  WRAPPED_KEY_BYTES,
  type KdfParams,
  type Pbkdf2Params,
  type Argon2idParams,
  type KeyEnvelope,
} from './envelope.js';
export { createConfig, FLUSH_BATCH_SIZE, MIGRATIONS_DIR } from './config.js';
export { VaultDbDriver } from './records-driver.js';
export {
  resolveDatabaseUrl,
  resolveMigrationUrl,
  checkDatabaseReachable,
  parseDatabaseUrl,
  redactUrl,
  type DatabaseTarget,
  type DatabaseSource,
} from './database-url.js';
export { startEmbeddedPostgres, type EmbeddedPostgresHandle, type EmbeddedPostgresOptions } from './embedded-postgres.js';
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
  ResyncRequiredError,
  ValidationError,
  LimitExceededError,
  TransientError,
  DatabaseError,
  ConfigurationError,
  type VaultDbErrorCode,
  type RuleViolation,
} from './errors.js';
export { SyncService } from './sync/sync-service.js';
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
  type SyncLimits,
  type SyncServiceOptions,
} from './sync/types.js';
