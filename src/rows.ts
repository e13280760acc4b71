/**
 * Plain row shapes of the two tables, as raw SQL (node-pg) returns them. Useful for reports,
 * exports and tests that read the tables without the ORM. (Not named `Record`, which would shadow
 * TypeScript's built-in.)
 *
 * @module
 */
import type { KdfParams } from './envelope.js';

/** A row of `vaults`. `bigint` columns arrive as strings from node-pg. */
export interface VaultRow {
  id: string;
  user_id: string;
  wrapped_key: Buffer;
  salt: Buffer;
  kdf_params: KdfParams;
  device_fingerprint: string | null;
  version: number;
  last_seq: string;
  purged_seq: string;
  version_floor: number;
  key_version: number;
  record_count: number;
  stored_bytes: string;
  enabled_at: Date;
  created_at: Date;
  updated_at: Date;
}

/** A row of `records`. `ciphertext` is empty for a tombstone. */
export interface RecordRow {
  id: string;
  user_id: string;
  vault_id: string;
  record_id: string;
  ciphertext: Buffer;
  version: number;
  deleted: boolean;
  seq: string;
  created_at: Date;
  updated_at: Date;
}

/** A row of `key_rotations`: a staged key rotation in progress (at most one per vault). */
export interface KeyRotationRow {
  id: string;
  user_id: string;
  vault_id: string;
  created_at: Date;
}

/** A row of `staged_records`: one record re-encrypted under the next key, waiting for the commit. */
export interface StagedRecordRow {
  id: string;
  user_id: string;
  rotation_id: string;
  record_id: string;
  base_version: number;
  ciphertext: Buffer;
}
