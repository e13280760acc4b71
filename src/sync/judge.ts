/**
 * The rule that decides each pushed change, as a pure function of the change, the record the
 * server holds and the vault's version floor. It is read under the vault row lock, so nothing can
 * move between judging and writing.
 *
 * @module
 */
import type { VaultRecord } from '../entities/vault-record.js';
import type { ValidChange } from './input.js';
import type { ConflictReason } from './types.js';

/** The largest version PostgreSQL's `integer` holds. */
export const MAX_VERSION = 2_147_483_647;

/** What to do with one change. */
export type Verdict =
  /** Write it; the record will be at `version`. */
  | { kind: 'write'; version: number }
  /** The same change already applied (a re-sent push whose response was lost): report success, write nothing. */
  | { kind: 'already_applied'; version: number }
  | { kind: 'conflict'; reason: ConflictReason };

/**
 * Judges one change against the server's record (undefined when there is none).
 *
 * A change applies when `baseVersion` equals the server's version (0 when there is no record). A
 * new record starts above `versionFloor`, the highest version a deleted record of the vault ever
 * had, so a device that remembers a purged record's version can never match a new one.
 *
 * A re-sent change counts as already applied when the server holds exactly what it would have
 * written: for an update or delete, that content at `baseVersion + 1`; for a create, that
 * ciphertext on a live record (its first version depended on the floor at the time). AES-GCM's
 * random nonce makes a collision with another device's write practically impossible.
 *
 * A write that would need a version past {@link MAX_VERSION} is a `version_exhausted` conflict.
 */
export function judge(change: ValidChange, current: VaultRecord | undefined, versionFloor: number): Verdict {
  if (!current) {
    // Deleting what the server never had (or has purged) writes nothing: it is already gone.
    if (change.baseVersion !== 0 || change.ciphertext === null) return { kind: 'conflict', reason: 'gone' };
    return versionFloor >= MAX_VERSION ? { kind: 'conflict', reason: 'version_exhausted' } : { kind: 'write', version: versionFloor + 1 };
  }
  // Versions start at 1, so a create (baseVersion 0) never matches an existing record here.
  if (change.baseVersion === current.version) {
    return current.version >= MAX_VERSION ? { kind: 'conflict', reason: 'version_exhausted' } : { kind: 'write', version: current.version + 1 };
  }
  if (change.baseVersion === 0) {
    if (change.ciphertext !== null && !current.deleted && current.ciphertext.equals(change.ciphertext)) return { kind: 'already_applied', version: current.version };
    return { kind: 'conflict', reason: 'exists' };
  }
  if (current.version === change.baseVersion + 1 && sameContent(change, current)) {
    return { kind: 'already_applied', version: current.version };
  }
  return { kind: 'conflict', reason: current.deleted ? 'gone' : 'version_mismatch' };
}

function sameContent(change: ValidChange, current: VaultRecord): boolean {
  if (change.ciphertext === null) return current.deleted;
  return !current.deleted && current.ciphertext.equals(change.ciphertext);
}
