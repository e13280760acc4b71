/**
 * Ciphertext is copied when a call is made (issue #12, "caller buffers"): a caller that reuses or
 * wipes its buffer as soon as the call has started can't change what is written. Each call below
 * overwrites the caller's bytes synchronously after calling, before the call's first SQL runs.
 */
import { expect, test } from 'vitest';
import { envelope } from '../support/fixtures.js';
import { bytes, newVault, put, setupSyncDatabase, storedRecord } from './support/sync.js';

const ctx = setupSyncDatabase();

test('push: wiping the buffers right after calling changes nothing that is written', async () => {
  const user = await newVault(ctx.sync);
  const original = bytes(64);
  const reused = Buffer.from(original);
  // A view into a larger buffer, as a client encrypting into a shared arena would pass.
  const arena = new Uint8Array(256);
  const second = bytes(32);
  arena.set(second, 100);
  const pending = ctx.sync.push(user, { changes: [{ recordId: 'a', baseVersion: 0, ciphertext: reused }, { recordId: 'b', baseVersion: 0, ciphertext: arena.subarray(100, 132) }] });
  reused.fill(0);
  arena.fill(7);
  expect((await pending).applied).toHaveLength(2);
  expect((await storedRecord(ctx.db.pool, user, 'a')).ciphertext.equals(original)).toBe(true);
  expect((await storedRecord(ctx.db.pool, user, 'b')).ciphertext.equals(second)).toBe(true);
});

test('rotateKey and the staged rotation: the same for re-encrypted records', async () => {
  const user = await newVault(ctx.sync);
  await ctx.sync.push(user, { changes: [put('a', 0), put('b', 0)] });
  const rotatedA = bytes(40);
  const buffer = Buffer.from(rotatedA);
  const pending = ctx.sync.rotateKey(user, { expectedVersion: 1, ...envelope(), records: [{ recordId: 'a', baseVersion: 1, ciphertext: buffer }, { recordId: 'b', baseVersion: 1, ciphertext: bytes() }] });
  buffer.fill(0);
  await pending;
  expect((await storedRecord(ctx.db.pool, user, 'a')).ciphertext.equals(rotatedA)).toBe(true);

  const { rotationId } = await ctx.sync.beginKeyRotation(user, { expectedVersion: 2 });
  const stagedB = bytes(40);
  const stageBuffer = Buffer.from(stagedB);
  const staging = ctx.sync.stageKeyRotation(user, { rotationId, records: [{ recordId: 'a', baseVersion: 2, ciphertext: bytes() }, { recordId: 'b', baseVersion: 2, ciphertext: stageBuffer }] });
  stageBuffer.fill(0);
  await staging;
  await ctx.sync.commitKeyRotation(user, { rotationId, expectedVersion: 2, ...envelope() });
  expect((await storedRecord(ctx.db.pool, user, 'b')).ciphertext.equals(stagedB)).toBe(true);
});
