/**
 * The key-envelope rules of src/envelope.ts: which KDF parameters are strong enough, which sizes
 * are plausible, and that every refusal is a ValidationError naming the offending path. Pure
 * functions, so no database.
 */
import { describe, expect, expectTypeOf, test } from 'vitest';
import { validateEnvelope, type KdfParams, type KeyEnvelope, type Pbkdf2Params } from '../src/envelope.js';
import { ValidationError } from '../src/errors.js';
import { argon2id, envelope, pbkdf2 } from './support/fixtures.js';

/** Runs validateEnvelope and returns the ValidationError it must throw. */
function rejection(input: unknown, prefix?: string): ValidationError {
  try {
    validateEnvelope(input, prefix);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    const e = error as ValidationError;
    expect(e.code).toBe('validation_failed');
    // One line, so it can go straight into a log or an HTTP error body.
    expect(e.message).not.toContain('\n');
    return e;
  }
  throw new Error(`expected a ValidationError for ${JSON.stringify(input)}`);
}

/** Asserts that `input` is refused and that `path` is among the reported paths and in the message. */
function expectRejected(input: unknown, path: string): ValidationError {
  const error = rejection(input);
  expect(error.violations.map((v) => v.path)).toContain(path);
  expect(error.message).toContain(`${path}:`);
  return error;
}

/** An envelope whose kdfParams are `params`, with a salt as long as they say (when that's a valid size). */
function withKdf(params: Record<string, unknown>): Record<string, unknown> {
  const saltLength = typeof params.saltLength === 'number' && Number.isInteger(params.saltLength) ? params.saltLength : 16;
  return { wrappedKey: new Uint8Array(40), salt: new Uint8Array(Math.max(0, saltLength)), kdfParams: params };
}

/** T-AUTH-03's `KdfParams`, copied from the ticket's text: the package's types must accept it as is. */
interface TicketKdfParams {
  algorithm: 'PBKDF2';
  iterations: number;
  saltLength: number;
}

describe("the ticket's KdfParams", () => {
  const ticket: TicketKdfParams = { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 };

  test("the ticket's type is assignable to KdfParams, and Pbkdf2Params is exactly the ticket's type", () => {
    expectTypeOf<TicketKdfParams>().toExtend<KdfParams>();
    expectTypeOf<Pbkdf2Params>().toEqualTypeOf<TicketKdfParams>();
  });

  test.each([600_000, 1_000_000, 2_000_000])("{ algorithm: 'PBKDF2' } with %i iterations is accepted and returned exactly as sent", (iterations) => {
    const params: TicketKdfParams = { ...ticket, iterations };
    const result = validateEnvelope(envelope(params));
    expect(result.kdfParams).toStrictEqual(params);
    expect(Object.keys(result.kdfParams)).toEqual(['algorithm', 'iterations', 'saltLength']);
  });

  test("the deprecated 'PBKDF2-SHA256' alias of earlier releases is still accepted, and kept as sent (not rewritten)", () => {
    const legacy = { algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 } as const;
    expect(validateEnvelope(envelope(legacy)).kdfParams).toStrictEqual(legacy);
  });

  test.each(['pbkdf2', 'PBKDF2-SHA1', 'PBKDF2-SHA512', 'PBKDF2 ', 'Pbkdf2'])('a near miss of the name, %j, is rejected', (algorithm) => {
    expectRejected(withKdf({ ...ticket, algorithm }), 'kdfParams.algorithm');
  });

  test("Argon2id parameters under the ticket's name are rejected, not silently stripped", () => {
    expectRejected(withKdf({ ...argon2id, algorithm: 'PBKDF2', iterations: 600_000 }), 'kdfParams');
  });

  test("the ticket's shape without saltLength is rejected", () => {
    expectRejected(withKdf({ algorithm: 'PBKDF2', iterations: 600_000 }), 'kdfParams.saltLength');
  });
});

describe('accepted envelopes', () => {
  test.each([600_000, 1_000_000, 2_000_000])('PBKDF2-SHA256 (the deprecated alias) with %i iterations', (iterations) => {
    const params: KdfParams = { ...pbkdf2, iterations } as KdfParams;
    expect(validateEnvelope(envelope(params)).kdfParams).toEqual(params);
  });

  test.each([
    { memoryMiB: 15, iterations: 2, parallelism: 1 },
    { memoryMiB: 64, iterations: 3, parallelism: 4 },
    { memoryMiB: 1024, iterations: 10, parallelism: 16 },
  ])('Argon2id with %o', (bounds) => {
    const params = { ...argon2id, ...bounds } as KdfParams;
    expect(validateEnvelope(envelope(params)).kdfParams).toEqual(params);
  });

  test.each([
    ['salt', 16],
    ['salt', 64],
    ['wrappedKey', 32],
    ['wrappedKey', 512],
  ] as const)('%s of %i bytes (a bound)', (field, size) => {
    const saltLength = field === 'salt' ? size : 16;
    const input: KeyEnvelope = {
      wrappedKey: new Uint8Array(field === 'wrappedKey' ? size : 40),
      salt: new Uint8Array(saltLength),
      kdfParams: { ...pbkdf2, saltLength },
    };
    expect(() => validateEnvelope(input)).not.toThrow();
  });

  test('Buffers, which the Vault entity stores and re-validates on every flush', () => {
    const input = envelope();
    expect(() => validateEnvelope({ ...input, wrappedKey: Buffer.from(input.wrappedKey), salt: Buffer.from(input.salt) })).not.toThrow();
  });

  test('unknown top-level keys are dropped from the result, so they are never stored', () => {
    const result = validateEnvelope({ ...envelope(), password: 'hunter2' });
    expect(Object.keys(result).sort()).toEqual(['kdfParams', 'salt', 'wrappedKey']);
  });
});

describe.each(['PBKDF2', 'PBKDF2-SHA256'])('%s bounds', (algorithm) => {
  test.each([
    ['below the minimum', 599_999],
    ['above the maximum', 2_000_001],
    ['fractional', 600_000.5],
    ['not finite', Number.POSITIVE_INFINITY],
    ['NaN', Number.NaN],
    ['a string', '600000'],
  ])('iterations %s is rejected', (_label, iterations) => {
    expectRejected(withKdf({ ...pbkdf2, algorithm, iterations }), 'kdfParams.iterations');
  });

  test.each([15, 65, 16.5])('saltLength %d is rejected', (saltLength) => {
    expectRejected({ wrappedKey: new Uint8Array(40), salt: new Uint8Array(Math.floor(saltLength)), kdfParams: { ...pbkdf2, algorithm, saltLength } }, 'kdfParams.saltLength');
  });
});

describe('Argon2id bounds', () => {
  test.each([
    ['memoryMiB', 14],
    ['memoryMiB', 1025],
    ['memoryMiB', 64.5],
    ['iterations', 1],
    ['iterations', 11],
    ['iterations', 2.5],
    ['parallelism', 0],
    ['parallelism', 17],
    ['parallelism', 1.5],
  ])('%s = %d is rejected', (field, value) => {
    expectRejected(withKdf({ ...argon2id, [field]: value }), `kdfParams.${field}`);
  });

  test('a missing parameter is rejected', () => {
    const { memoryMiB: _dropped, ...rest } = argon2id as Extract<KdfParams, { algorithm: 'Argon2id' }>;
    expectRejected(withKdf(rest), 'kdfParams.memoryMiB');
  });
});

describe('kdfParams shape', () => {
  test('an unknown algorithm is rejected', () => {
    expectRejected(withKdf({ algorithm: 'scrypt', iterations: 600_000, saltLength: 16 }), 'kdfParams.algorithm');
  });

  test('an extra key is rejected, because kdfParams is stored verbatim', () => {
    const error = expectRejected(withKdf({ ...pbkdf2, pepper: 'x' }), 'kdfParams');
    expect(error.message).toContain('pepper');
  });

  test('Argon2id parameters under the PBKDF2 name are rejected, not silently stripped', () => {
    expectRejected(withKdf({ ...argon2id, algorithm: 'PBKDF2-SHA256', iterations: 600_000 }), 'kdfParams');
  });
});

describe('sizes', () => {
  test('a salt whose length differs from kdfParams.saltLength is rejected', () => {
    const error = expectRejected({ ...envelope(), salt: new Uint8Array(16), kdfParams: { ...pbkdf2, saltLength: 32 } }, 'salt');
    expect(error.message).toContain('kdfParams.saltLength');
  });

  test('a salt under 16 bytes is rejected even when saltLength agrees', () => {
    const input = { wrappedKey: new Uint8Array(40), salt: new Uint8Array(15), kdfParams: { ...pbkdf2, saltLength: 15 } };
    expectRejected(input, 'salt');
    expectRejected(input, 'kdfParams.saltLength');
  });

  test('a salt over 64 bytes is rejected, with the bounds in the rule', () => {
    const error = expectRejected({ wrappedKey: new Uint8Array(40), salt: new Uint8Array(65), kdfParams: { ...pbkdf2, saltLength: 65 } }, 'salt');
    expect(error.violations).toContainEqual({ path: 'salt', rule: 'must be 16 to 64 bytes' });
  });

  test.each([0, 31, 513])('a wrapped key of %i bytes is rejected, with the bounds in the rule', (size) => {
    const error = expectRejected({ ...envelope(), wrappedKey: new Uint8Array(size) }, 'wrappedKey');
    expect(error.violations).toEqual([{ path: 'wrappedKey', rule: 'must be 32 to 512 bytes' }]);
  });

  test.each([
    ['a string', 'SECRET-KEY-MATERIAL'],
    ['an array of numbers', Array.from({ length: 40 }, () => 7)],
    ['an ArrayBuffer', new ArrayBuffer(40)],
  ])('a wrappedKey that is %s is rejected without echoing it', (_label, value) => {
    const error = expectRejected({ ...envelope(), wrappedKey: value }, 'wrappedKey');
    expect(error.message).toContain('Uint8Array');
    expect(error.message).not.toContain('SECRET');
  });

  test('a salt that is not a Uint8Array is rejected', () => {
    expectRejected({ ...envelope(), salt: 'c2FsdHNhbHRzYWx0c2FsdA==' }, 'salt');
  });
});

describe('reporting', () => {
  test('a prefix is put in front of every path', () => {
    const error = rejection(withKdf({ ...pbkdf2, iterations: 1 }), 'envelope');
    expect(error.violations).toEqual([{ path: 'envelope.kdfParams.iterations', rule: expect.any(String) }]);
    expect(error.message).toContain('envelope.kdfParams.iterations:');
  });

  test('an empty prefix is no prefix', () => {
    expect(rejection(withKdf({ ...pbkdf2, iterations: 1 }), '').violations.map((v) => v.path)).toEqual(['kdfParams.iterations']);
  });

  test('every broken rule is reported, not only the first', () => {
    const error = rejection({ wrappedKey: new Uint8Array(1), salt: new Uint8Array(16), kdfParams: { ...pbkdf2, iterations: 1 } });
    expect(error.violations.map((v) => v.path).sort()).toEqual(['kdfParams.iterations', 'wrappedKey']);
  });

  test('a non-object is rejected as a whole', () => {
    expect(rejection(null).violations.map((v) => v.path)).toEqual(['(input)']);
  });
});
