/**
 * The soak run's stand-in for encrypted bookmarks. The server treats ciphertext as opaque bytes, so
 * the harness may put a small header in front of the random body: which user and device wrote it,
 * and the device's write number. That makes every write's bytes unique (as AES-GCM's random nonce
 * does for real clients) and lets a device tell at once whether a record it received belongs to
 * another user.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Rng } from './random.js';

const MAGIC = Buffer.from('SOAK', 'ascii');
const HEADER = MAGIC.length + 2 + 2 + 4;

/** The content of a tombstone, as the invariants compare it. */
export const TOMBSTONE = 'tombstone';

/** Who wrote a ciphertext. */
export interface PayloadOrigin {
  user: number;
  device: number;
  write: number;
}

/** A fresh ciphertext written by device `device` of user `user`: header plus 16 to 240 random bytes. */
export function makeCiphertext(rng: Rng, origin: PayloadOrigin): Buffer {
  const header = Buffer.alloc(HEADER);
  MAGIC.copy(header, 0);
  header.writeUInt16BE(origin.user, 4);
  header.writeUInt16BE(origin.device, 6);
  header.writeUInt32BE(origin.write, 8);
  return Buffer.concat([header, rng.bytes(rng.int(16, 240))]);
}

/** The header of a soak ciphertext, or null when the bytes are not one. */
export function originOf(ciphertext: Uint8Array): PayloadOrigin | null {
  const buf = Buffer.from(ciphertext.buffer, ciphertext.byteOffset, ciphertext.byteLength);
  if (buf.length < HEADER || !buf.subarray(0, 4).equals(MAGIC)) return null;
  return { user: buf.readUInt16BE(4), device: buf.readUInt16BE(6), write: buf.readUInt32BE(8) };
}

/** A short digest that stands for a record's content: a hash of the ciphertext, or {@link TOMBSTONE}. */
export function contentOf(ciphertext: Uint8Array | null, deleted: boolean): string {
  if (deleted || ciphertext === null) return TOMBSTONE;
  return createHash('sha256').update(ciphertext).digest('hex').slice(0, 20);
}
