/** Valid and invalid inputs shared by the tests. */
import { randomBytes } from 'node:crypto';
import type { KdfParams, KeyEnvelope } from '../../src/envelope.js';

/** PBKDF2 parameters at the minimum accepted strength. */
export const pbkdf2: KdfParams = { algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 };
/** Argon2id parameters well inside the bounds. */
export const argon2id: KdfParams = { algorithm: 'Argon2id', memoryMiB: 64, iterations: 3, parallelism: 4, saltLength: 16 };

/** A random, valid envelope. */
export function envelope(kdfParams: KdfParams = pbkdf2): KeyEnvelope {
  return { wrappedKey: randomBytes(60), salt: randomBytes(kdfParams.saltLength), kdfParams };
}

/** Random bytes standing in for an encrypted bookmark. */
export function ciphertext(size = 64): Buffer {
  return randomBytes(size);
}
