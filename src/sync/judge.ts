/**
 * The rule that decides each pushed change, as a pure function of the change and the record the
 * server holds. It is read under the vault row lock, so nothing can move between judging and
 * writing.
 *
 * @module
 */
import type { VaultRecord } from '../entities/vault-record.js';
import type { ValidChange } from './input.js';
import type { ConflictReason } from './types.js';

/** What to do with one change. */
export type Verdict =
  | { kind: 'write' }
  /** The same change already applied (a re-sent push whose response was lost): report success, write nothing. */
  | { kind: 'already_applied'; version: number }
  | { kind: 'conflict'; reason: ConflictReason };

/**
 * Judges one change against the server's record (undefined when there is none).
 *
 * A change applies when `baseVersion` equals the server's version (0 when there is no record).
 * A re-sent change counts as already applied when the server holds exactly what it would have
 * written at `baseVersion + 1`: the same ciphertext (AES-GCM's random nonce makes a collision
 * with another device's write practically impossible), or a tombstone for a delete.
 */
export function judge(change: ValidChange, current: VaultRecord | undefined): Verdict {
  if (!current) {
    // Deleting what the server never had (or has purged) writes nothing: it is already gone.
    return change.baseVersion === 0 && change.ciphertext !== null ? { kind: 'write' } : { kind: 'conflict', reason: 'gone' };
  }
  // Versions start at 1, so a create (baseVersion 0) never matches an existing record here.
  if (change.baseVersion === current.version) return { kind: 'write' };
  if (current.version === change.baseVersion + 1 && sameContent(change, current)) {
    return { kind: 'already_applied', version: current.version };
  }
  if (change.baseVersion === 0) return { kind: 'conflict', reason: 'exists' };
  return { kind: 'conflict', reason: current.deleted ? 'gone' : 'version_mismatch' };
}

function sameContent(change: ValidChange, current: VaultRecord): boolean {
  if (change.ciphertext === null) return current.deleted;
  return !current.deleted && current.ciphertext.equals(change.ciphertext);
}
