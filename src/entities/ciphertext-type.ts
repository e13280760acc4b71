import { Type, type EntityProperty, type Platform } from '@mikro-orm/core';

/**
 * A `bytea` column holding ciphertext, mapped to a `Buffer` without copying it.
 *
 * MikroORM's `BlobType` copies a buffer twice on every snapshot (issue 10, lever 3): its
 * `convertToDatabaseValue` is `Buffer.from(value)`, and the entity comparator then `clone()`s that
 * copy, for every record loaded and every record flushed. This type hands the same `Buffer` to the
 * snapshot and to the driver, and compares two values by content (as `BlobType`'s comparator
 * does), so assigning an equal buffer is no change and assigning a different one is.
 *
 * The price is that a ciphertext is treated as immutable: assign a new `Buffer` to change it.
 * Writing into the entity's buffer in place also changes the snapshot, so the flush would not see
 * it. The sync service never does (it copies callers' buffers on input and assigns fresh ones).
 *
 * @example
 * ```ts
 * @Property({ type: CiphertextType })
 * ciphertext: Buffer;
 * ```
 */
export class CiphertextType extends Type<Buffer, Buffer> {
  /** The value itself: the driver binds a `Buffer` as `bytea` (no copy). */
  override convertToDatabaseValue(value: Buffer): Buffer {
    return value;
  }

  /** node-pg returns `bytea` as a `Buffer`; any other byte view is wrapped without a copy. */
  override convertToJSValue(value: Buffer | Uint8Array): Buffer {
    if (value === null || value === undefined || Buffer.isBuffer(value)) return value;
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }

  /**
   * Tells the comparator not to `clone()` the value into the snapshot; the comparison itself is
   * {@link compareValues}, which the comparator prefers whenever a type defines it.
   */
  override compareAsType(): string {
    return 'string';
  }

  /** Equal when the same buffer or the same bytes, as `BlobType`'s `compareBuffers`. */
  override compareValues(a: Buffer, b: Buffer): boolean {
    return a === b || (Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b));
  }

  /** A hydrated value is already what the snapshot keeps: no conversion back. */
  override ensureComparable(): boolean {
    return false;
  }

  override get runtimeType(): string {
    return 'Buffer';
  }

  override getColumnType(_prop: EntityProperty, platform: Platform): string {
    return platform.getBlobDeclarationSQL();
  }
}
