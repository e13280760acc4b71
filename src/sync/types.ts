/**
 * The sync service's public shapes. Byte fields accept any `Uint8Array` and come back as `Buffer`.
 *
 * @module
 */
import type { KdfParams } from '../envelope.js';

/** Create or update a record: `baseVersion` is the version the device last saw (0 to create). */
export interface UpsertChange {
  recordId: string;
  baseVersion: number;
  ciphertext: Uint8Array;
  deleted?: false;
}

/** Delete a record, leaving a tombstone: `baseVersion` is the version the device last saw. */
export interface DeleteChange {
  recordId: string;
  baseVersion: number;
  deleted: true;
}

/** One change a device pushes. */
export type Change = UpsertChange | DeleteChange;

/** A record as the server holds it. `ciphertext` is null for a tombstone. */
export interface RecordState {
  recordId: string;
  version: number;
  deleted: boolean;
  ciphertext: Buffer | null;
  updatedAt: Date;
}

/**
 * Why a change was not applied:
 * - `version_mismatch`: the record moved on since `baseVersion`; merge with `server` and re-push at `server.version`;
 * - `gone`: the record was deleted (`server` is the tombstone) or purged (`server` is null);
 * - `exists`: the change creates (`baseVersion` 0) a record id that is already taken;
 * - `version_exhausted`: the write would need a version above 2,147,483,647 (the record's own, or
 *   for a create the vault's version floor); the record id can't be written again, use a new one.
 */
export type ConflictReason = 'version_mismatch' | 'gone' | 'exists' | 'version_exhausted';

/** A change that was not applied, with the server's state so the device can merge. */
export interface Conflict {
  recordId: string;
  reason: ConflictReason;
  server: RecordState | null;
}

/** Input of `push`. */
export interface PushInput {
  changes: Change[];
  /** When true, any conflict means nothing of this push is applied. Default false. */
  atomic?: boolean;
  /**
   * The device's current feed cursor, so the result's cursor can move past this push. Required
   * (else `ResyncRequiredError`) once the vault has purged tombstones: a device without a cursor
   * has seen nothing, so it predates the purge horizon and must pull first.
   */
  cursor?: string | null;
  /**
   * The vault key version (`VaultInfo.keyVersion`) the ciphertext was encrypted under. Optional
   * until the vault's key is first rotated; after that, a push carrying ciphertext must name the
   * current one, or it gets `StaleKeyError`. Deletes carry no ciphertext and need none.
   */
  keyVersion?: number;
}

/** Result of `push`. */
export interface PushResult {
  /** Changes now stored, each with the record's new version (including retries that had already applied). */
  applied: { recordId: string; version: number }[];
  conflicts: Conflict[];
  /**
   * Always safe to adopt: past this push's changes only if nothing else was committed after the
   * cursor the device sent; otherwise the device's own cursor, so it pulls what it missed.
   */
  cursor: string;
}

/** Input of `pull`. */
export interface PullInput {
  /** The cursor from the last pull or push; null or absent for a full sync. */
  cursor?: string | null;
  /** Most changes to return. Default and maximum come from the service's limits. */
  limit?: number;
  /** Most ciphertext bytes to return (at least one change is always returned). */
  maxBytes?: number;
}

/** Result of `pull`. */
export interface PullResult {
  /** Changes after the cursor, tombstones included, in commit order. */
  changes: RecordState[];
  cursor: string;
  /** True when more changes wait: pull again with the returned cursor. */
  hasMore: boolean;
}

/** The key envelope and its version, as a device needs it to unlock the vault. */
export interface VaultInfo {
  userId: string;
  wrappedKey: Buffer;
  salt: Buffer;
  kdfParams: KdfParams;
  deviceFingerprint: string | null;
  /** Envelope version; pass it as `expectedVersion` to `rewrapKey` and `rotateKey`. */
  version: number;
  /** Vault key generation: 1 when enabled, + 1 per rotation (a rewrap keeps it). Pass it as `PushInput.keyVersion`. */
  keyVersion: number;
  enabledAt: Date;
  updatedAt: Date;
}

/** Input of `enableVault`. */
export interface EnableVaultInput {
  wrappedKey: Uint8Array;
  salt: Uint8Array;
  kdfParams: KdfParams;
  deviceFingerprint?: string | null;
}

/** Input of `rewrapKey`: a new envelope for the same vault key (a password or KDF change). */
export interface RewrapKeyInput {
  expectedVersion: number;
  wrappedKey: Uint8Array;
  salt: Uint8Array;
  kdfParams: KdfParams;
}

/** One live record re-encrypted under the next vault key, at the version it was read. */
export interface ReencryptedRecord {
  recordId: string;
  baseVersion: number;
  ciphertext: Uint8Array;
}

/** Input of `rotateKey`: a new vault key, and every live record re-encrypted with it. */
export interface RotateKeyInput extends RewrapKeyInput {
  records: ReencryptedRecord[];
}

/** Input of `beginKeyRotation`. */
export interface BeginKeyRotationInput {
  /** The envelope version the device read (`VaultInfo.version`). */
  expectedVersion: number;
}

/** Input of `stageKeyRotation`: one chunk of re-encrypted records, within the per-call limits. */
export interface StageKeyRotationInput {
  rotationId: string;
  /** Records to stage; staging a `recordId` again replaces it. */
  records: ReencryptedRecord[];
  /** Record ids to take out of the staged set (records deleted since they were staged). */
  remove?: string[];
}

/** Input of `commitKeyRotation`: the new envelope; the records are the staged ones. */
export interface CommitKeyRotationInput extends RewrapKeyInput {
  rotationId: string;
}

/** Configurable limits; every one has a default (see {@link DEFAULT_LIMITS}). */
export interface SyncLimits {
  /** Most changes in one push. */
  maxChanges: number;
  /** Most ciphertext bytes in one record. */
  maxRecordBytes: number;
  /** Longest `recordId`, in characters (code points). */
  maxRecordIdLength: number;
  /** Largest `limit` a pull may ask for. */
  maxPullLimit: number;
  /** `limit` of a pull that does not say. */
  defaultPullLimit: number;
  /** Largest `maxBytes` a pull may ask for. */
  maxPullBytes: number;
  /** `maxBytes` of a pull that does not say. */
  defaultPullBytes: number;
  /** Most records one `rotateKey` or `stageKeyRotation` call may carry. */
  maxRotationRecords: number;
  /** Most ciphertext bytes, all changes together, in one push. */
  maxPushBytes: number;
  /** Most ciphertext bytes, all records together, in one `rotateKey` or `stageKeyRotation` call. */
  maxRotationBytes: number;
  /** Most live records a vault may hold (checked under the vault lock; deletes always work). */
  maxVaultRecords: number;
  /** Most bytes of live ciphertext a vault may hold (checked under the vault lock). */
  maxVaultBytes: number;
}

/** The defaults of {@link SyncLimits}. */
export const DEFAULT_LIMITS: Readonly<SyncLimits> = Object.freeze({
  maxChanges: 1000,
  maxRecordBytes: 64 * 1024,
  maxRecordIdLength: 255,
  maxPullLimit: 1000,
  defaultPullLimit: 500,
  maxPullBytes: 16 * 1024 * 1024,
  defaultPullBytes: 4 * 1024 * 1024,
  maxRotationRecords: 10_000,
  maxPushBytes: 4 * 1024 * 1024,
  maxRotationBytes: 16 * 1024 * 1024,
  maxVaultRecords: 100_000,
  maxVaultBytes: 256 * 1024 * 1024,
});

/**
 * Options of `new SyncService(em, options)`, validated at construction: a bad value throws
 * `ConfigurationError` naming it (see `src/sync/options.ts`).
 */
export interface SyncServiceOptions {
  /** Limits to change; every key given must be a positive integer. Unknown keys are refused. */
  limits?: Partial<SyncLimits>;
  /**
   * How long a call waits for the vault lock (held by a concurrent push to the same vault) before
   * failing with a retryable `TransientError`, in ms: an integer from 1 to 2,147,483,647
   * (PostgreSQL's `lock_timeout`). Default 5,000.
   */
  lockTimeoutMs?: number;
  /**
   * Most calls for one vault that may be in flight at once in this process (counted over every
   * `SyncService` on the same ORM). One more fails at once with a `TransientError` that carries
   * `retryAfterMs`, without taking a pooled connection, so one user's queue can't hold the pool.
   * Default 2.
   */
  maxConcurrentCallsPerVault?: number;
  /**
   * The key that signs the identity claim of every transaction, without which row-level security
   * admits no row: 32 bytes, or 64 hex digits. Default: the `VAULT_DB_CLAIM_KEY` environment
   * variable; without it, the key is read from the database on first use, which only the owner
   * role may do (a service connected as the application role then fails with ConfigurationError).
   * The owner gets the value with `readClaimKey()` or
   * `select encode(key, 'hex') from public.vault_db_claim_key`.
   */
  claimKey?: Uint8Array | string;
}
