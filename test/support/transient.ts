/** An assertion shared by the error-classification tests (test/unit/transient*.test.ts). */
import { expect } from 'vitest';
import { TransientError, VaultDbError } from '../../src/errors.js';

/** Asserts that `error` is a retryable {@link TransientError} (a package error) and returns it. */
export function expectTransient(error: unknown): TransientError {
  expect(error).toBeInstanceOf(TransientError);
  expect(error).toBeInstanceOf(VaultDbError);
  expect(error).toMatchObject({ code: 'transient', retryable: true });
  return error as TransientError;
}
