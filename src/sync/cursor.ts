/**
 * Feed cursors. A cursor names a vault and a feed position in it: "I have seen every change up to
 * `seq` of vault `vaultId`". It is opaque to clients (base64url), and bound to the vault's id, so
 * a cursor from another vault, or from before the vault was disabled and enabled again (a new id),
 * can't be continued.
 *
 * It also carries the vault's purge horizon (`purged_seq`) as the server last checked it
 * (`horizon`). Every row at or below that position was written before the check, so a device that
 * pulled from scratch after it never saw the records whose tombstones lie there: purging them
 * can't make it miss a delete. That is what lets a full resync page through a vault whose purge
 * horizon lies above its first pages (issue #12.1's rules would otherwise refuse page 2).
 *
 * Format: `v2.<vault id>.<seq>.<horizon>`; `v1.<vault id>.<seq>` (before the horizon) is still
 * read, with horizon 0.
 *
 * @module
 */
import { ResyncRequiredError } from '../errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NUMBER = /^\d{1,15}$/;

/** A decoded cursor. */
export interface CursorPosition {
  vaultId: string;
  seq: number;
  /** The vault's purge horizon when the server last accepted this device's position. */
  horizon: number;
}

/**
 * Encodes a feed position as an opaque cursor.
 * @param horizon the vault's `purged_seq`, read in the same transaction that vouched for `seq`
 */
export function encodeCursor(vaultId: string, seq: number, horizon = 0): string {
  return Buffer.from(`v2.${vaultId}.${seq}.${horizon}`).toString('base64url');
}

/**
 * Decodes a cursor without knowing yet which vault it must belong to; check that with
 * {@link resumePosition} once the vault is known.
 * @throws ResyncRequiredError when it is malformed
 */
export function parseCursor(cursor: string): CursorPosition {
  const malformed = () => new ResyncRequiredError('the cursor is malformed');
  // The length bound only spares decoding a huge string: no valid cursor is near 128 characters
  // (at most 96), so no test can tell it from a looser one, or from none.
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent, see above
  if (cursor.length > 128 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw malformed();
  const [prefix, id, seqText, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('.');
  const horizonText = prefix === 'v2' && rest.length === 1 ? rest[0] : prefix === 'v1' && rest.length === 0 ? '0' : undefined;
  // The two `undefined` tests are for the type checker: UUID and NUMBER refuse an undefined
  // ("undefined") anyway, so dropping either changes nothing.
  // Stryker disable next-line ConditionalExpression,LogicalOperator,StringLiteral: equivalent, see above
  if (horizonText === undefined || id === undefined || !UUID.test(id) || !NUMBER.test(seqText ?? '') || !NUMBER.test(horizonText)) throw malformed();
  return { vaultId: id, seq: Number(seqText), horizon: Number(horizonText) };
}

/** What a cursor is checked against: the vault's id and feed head, read in the same transaction. */
export interface FeedHead {
  vaultId: string;
  lastSeq: number;
  purgedSeq: number;
}

/**
 * The feed position a device continues from: the cursor's, once it is known to belong to this
 * vault and not to lie ahead of its head, and unless a purge since may have removed a tombstone the
 * device never saw: the vault's purge horizon (`purgedSeq`) is above both the cursor's position
 * and the horizon the cursor was last accepted at. Such a device would silently miss a delete on
 * a pull, and could act on a record it doesn't know was deleted on a push. (Every tombstone at or
 * below the cursor's horizon already existed when the device's view began, so the device never
 * received its record alive.) Issue the next cursor with the current `purgedSeq` as its horizon.
 *
 * Without a cursor, a pull starts from 0 (it is the resync). A push without a cursor is refused
 * once the vault has a purge horizon: a device that has seen nothing may hold records from before
 * it (issue #12.1: it could re-create a record whose deletion it never saw).
 * @throws ResyncRequiredError when the cursor can't be continued
 */
export function resumePosition(cursor: CursorPosition | null, head: FeedHead, call: 'pull' | 'push'): number {
  if (cursor === null) {
    if (call === 'push' && head.purgedSeq > 0) {
      throw new ResyncRequiredError('this vault has purged deletions, and a push without a cursor may predate them; pull first and push with the cursor');
    }
    return 0;
  }
  checkVault(cursor, head.vaultId);
  if (cursor.seq > head.lastSeq || cursor.horizon > head.lastSeq) throw new ResyncRequiredError('the cursor is ahead of the vault');
  if (head.purgedSeq > Math.max(cursor.seq, cursor.horizon)) throw new ResyncRequiredError('deletions this cursor had not seen were purged');
  return cursor.seq;
}

/**
 * Decodes a cursor of the given vault.
 * @throws ResyncRequiredError when it is malformed or belongs to another vault
 */
export function decodeCursor(cursor: string, vaultId: string): CursorPosition {
  const position = parseCursor(cursor);
  checkVault(position, vaultId);
  return position;
}

function checkVault(position: CursorPosition, vaultId: string): void {
  if (position.vaultId !== vaultId) throw new ResyncRequiredError('the cursor belongs to another vault, or to a vault that was disabled since');
}
