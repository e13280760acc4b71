/**
 * The key envelope: the vault key wrapped by a password-derived key, the salt and the KDF
 * parameters a device needs to derive that key again. The server stores it and never unwraps it;
 * it only refuses parameters that are too weak or sizes that can't be right.
 *
 * Bounds follow Bitwarden's (see shared/ANCHORS.md): PBKDF2 with HMAC-SHA-256, 600,000 to
 * 2,000,000 iterations; Argon2id 2..10 iterations, 15..1024 MiB, parallelism 1..16.
 *
 * The ticket (T-AUTH-03) names PBKDF2 `{ algorithm: 'PBKDF2', iterations, saltLength }`, and that
 * is the primary spelling. Earlier releases of this package spelled it `'PBKDF2-SHA256'` and stored
 * that; it stays accepted as a deprecated alias with the same meaning and bounds, so a vault that
 * holds it still validates when its envelope is rewrapped or rotated. Parameters are stored exactly
 * as sent: the alias is not rewritten, because devices compare the stored name.
 *
 * @module
 */
import { z } from 'zod';
import { ValidationError, type RuleViolation } from './errors.js';

/** Smallest and largest accepted salt, in bytes. */
export const SALT_BYTES = { min: 16, max: 64 } as const;
/**
 * Smallest and largest accepted wrapped key, in bytes. A 256-bit key wrapped with AES-KW is 40
 * bytes and with AES-GCM 60 bytes; 512 leaves room for other schemes.
 */
export const WRAPPED_KEY_BYTES = { min: 32, max: 512 } as const;

const saltLength = z.number().int().min(SALT_BYTES.min).max(SALT_BYTES.max);

/** Fewest and most PBKDF2 iterations accepted (OWASP's 2023 minimum for HMAC-SHA-256; Bitwarden's maximum). */
export const PBKDF2_ITERATIONS = { min: 600_000, max: 2_000_000 } as const;
const pbkdf2Iterations = z.number().int().min(PBKDF2_ITERATIONS.min).max(PBKDF2_ITERATIONS.max);

// Stryker disable ObjectLiteral: emptying a KDF schema's shape makes the module fail to import
// (z.discriminatedUnion throws when an option lacks the `algorithm` key), which every envelope test
// would show; Stryker's vitest runner 9.6.1 counts a test file that fails to import as zero tests
// run, so as a survivor.

/** zod schema of {@link Pbkdf2Params}: the ticket's exact shape. */
export const pbkdf2ParamsSchema = z
  .object({
    algorithm: z.literal('PBKDF2'),
    iterations: pbkdf2Iterations,
    saltLength,
  })
  .strict();

/**
 * zod schema of {@link LegacyPbkdf2Params}, the `'PBKDF2-SHA256'` spelling of earlier releases.
 * @deprecated send {@link pbkdf2ParamsSchema}'s `'PBKDF2'`; this stays so stored vaults keep validating.
 */
export const legacyPbkdf2ParamsSchema = z
  .object({
    algorithm: z.literal('PBKDF2-SHA256'),
    iterations: pbkdf2Iterations,
    saltLength,
  })
  .strict();

/** zod schema of {@link Argon2idParams}. */
export const argon2idParamsSchema = z
  .object({
    algorithm: z.literal('Argon2id'),
    memoryMiB: z.number().int().min(15).max(1024),
    iterations: z.number().int().min(2).max(10),
    parallelism: z.number().int().min(1).max(16),
    saltLength,
  })
  .strict();
// Stryker restore ObjectLiteral

/** zod schema of {@link KdfParams}: a discriminated union on `algorithm`. */
// Stryker disable next-line StringLiteral: another key fails the import, as above
export const kdfParamsSchema = z.discriminatedUnion('algorithm', [pbkdf2ParamsSchema, argon2idParamsSchema, legacyPbkdf2ParamsSchema]);

/**
 * The ticket's (T-AUTH-03) `KdfParams`, field for field: PBKDF2 with HMAC-SHA-256, 600,000 to
 * 2,000,000 iterations.
 */
export type Pbkdf2Params = {
  algorithm: 'PBKDF2';
  iterations: number;
  saltLength: number;
};
/** Argon2id within Bitwarden's bounds: the extension beyond the ticket. */
export type Argon2idParams = {
  algorithm: 'Argon2id';
  memoryMiB: number;
  iterations: number;
  parallelism: number;
  saltLength: number;
};
/**
 * PBKDF2 with HMAC-SHA-256 under the name earlier releases stored. Same meaning and bounds as
 * {@link Pbkdf2Params}; stored as sent.
 * @deprecated send `algorithm: 'PBKDF2'`, the ticket's spelling
 */
export type LegacyPbkdf2Params = {
  algorithm: 'PBKDF2-SHA256';
  iterations: number;
  saltLength: number;
};
/**
 * How a device derives the wrapping key from the passphrase, stored as `vaults.kdf_params`: the
 * ticket's PBKDF2 first, then Argon2id, then the deprecated `'PBKDF2-SHA256'` alias.
 *
 * @example
 * ```ts
 * const kdf: KdfParams = { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 };
 * ```
 */
export type KdfParams = Pbkdf2Params | Argon2idParams | LegacyPbkdf2Params;

// The types above are written out so they read like the ticket (type literals rather than
// interfaces, so they stay assignable to Record<string, unknown>). These lines fail to compile if
// a schema and its type ever drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type SchemasMatchTypes = [
  Same<z.infer<typeof pbkdf2ParamsSchema>, Pbkdf2Params>,
  Same<z.infer<typeof argon2idParamsSchema>, Argon2idParams>,
  Same<z.infer<typeof legacyPbkdf2ParamsSchema>, LegacyPbkdf2Params>,
  Same<z.infer<typeof kdfParamsSchema>, KdfParams>,
];
// Stryker disable next-line ArrayDeclaration,BooleanLiteral: a compile-time check; nothing reads the value
const schemasMatchTypes: SchemasMatchTypes = [true, true, true, true];
void schemasMatchTypes;

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, { message: 'must be a Uint8Array' });

/** zod schema of {@link KeyEnvelope}; also checks that the salt is as long as `kdfParams.saltLength`. */
export const keyEnvelopeSchema = z
  .object({
    wrappedKey: bytes.refine((b) => b.length >= WRAPPED_KEY_BYTES.min && b.length <= WRAPPED_KEY_BYTES.max, {
      message: `must be ${WRAPPED_KEY_BYTES.min} to ${WRAPPED_KEY_BYTES.max} bytes`,
    }),
    salt: bytes.refine((b) => b.length >= SALT_BYTES.min && b.length <= SALT_BYTES.max, {
      message: `must be ${SALT_BYTES.min} to ${SALT_BYTES.max} bytes`,
    }),
    kdfParams: kdfParamsSchema,
  })
  .superRefine((env, ctx) => {
    if (env.salt.length !== env.kdfParams.saltLength) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['salt'],
        message: `is ${env.salt.length} bytes but kdfParams.saltLength says ${env.kdfParams.saltLength}`,
      });
    }
  });

/** The wrapped vault key with what is needed to unwrap it on a device. */
export interface KeyEnvelope {
  wrappedKey: Uint8Array;
  salt: Uint8Array;
  kdfParams: KdfParams;
}

/** Turns zod issues into {@link RuleViolation}s, prefixing each path. */
export function toViolations(error: z.ZodError, prefix?: string): RuleViolation[] {
  return error.issues.map((issue) => ({
    path: (prefix ? [prefix, ...issue.path] : issue.path).join('.') || '(input)',
    rule: issue.message,
  }));
}

/**
 * Validates a key envelope and returns it typed, or throws {@link ValidationError} naming each
 * broken rule. It never echoes the bytes themselves.
 *
 * @example
 * ```ts
 * validateEnvelope({ wrappedKey, salt, kdfParams: { algorithm: 'Argon2id', memoryMiB: 64, iterations: 3, parallelism: 4, saltLength: 16 } });
 * ```
 */
export function validateEnvelope(input: unknown, prefix?: string): KeyEnvelope {
  const parsed = keyEnvelopeSchema.safeParse(input);
  if (!parsed.success) throw new ValidationError(toViolations(parsed.error, prefix));
  return parsed.data;
}
