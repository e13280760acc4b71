/**
 * Feed cursors. A cursor names a vault and a feed position in it: "I have seen every change up to
 * `seq` of vault `vaultId`". It is opaque to clients (base64url), and bound to the vault's id, so
 * a cursor from another vault, or from before the vault was disabled and enabled again (a new id),
 * can't be continued.
 *
 * @module
 */
import { ResyncRequiredError } from '../errors.js';

const PREFIX = 'v1';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A decoded cursor. */
export interface CursorPosition {
  vaultId: string;
  seq: number;
}

/** Encodes a feed position as an opaque cursor. */
export function encodeCursor(vaultId: string, seq: number): string {
  return Buffer.from(`${PREFIX}.${vaultId}.${seq}`, 'utf8').toString('base64url');
}

/**
 * Decodes a cursor without knowing yet which vault it must belong to; check that with
 * {@link resumePosition} once the vault is known.
 * @throws ResyncRequiredError when it is malformed
 */
export function parseCursor(cursor: string): CursorPosition {
  if (cursor.length > 128 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw new ResyncRequiredError('the cursor is malformed');
  const [prefix, id, seqText, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split('.');
  const seq = Number(seqText);
  if (prefix !== PREFIX || rest.length > 0 || id === undefined || !UUID.test(id) || !/^\d{1,15}$/.test(seqText ?? '') || !Number.isSafeInteger(seq)) {
    throw new ResyncRequiredError('the cursor is malformed');
  }
  return { vaultId: id, seq };
}

/** What a cursor is checked against: the vault's id and feed head, read in the same transaction. */
export interface FeedHead {
  vaultId: string;
  lastSeq: number;
  purgedSeq: number;
}

/**
 * The feed position a device continues from: the cursor's, once it is known to belong to this
 * vault, not to lie ahead of its head, and not to be older than the purge horizon (`purgedSeq`):
 * such a device never saw deletions that are gone from the feed now, so a pull would silently miss
 * them and a push could act on records it doesn't know were deleted.
 *
 * Without a cursor, a pull starts from 0 (it is the resync). A push without a cursor is refused
 * once the vault has a purge horizon: a device that has seen nothing predates it (issue #12.1:
 * it could re-create a record whose deletion it never saw).
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
  if (cursor.seq > head.lastSeq) throw new ResyncRequiredError('the cursor is ahead of the vault');
  if (cursor.seq < head.purgedSeq) throw new ResyncRequiredError('deletions this cursor had not seen were purged');
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
