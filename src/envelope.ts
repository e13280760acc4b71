/**
 * The key envelope: the vault key wrapped by a password-derived key, the salt and the KDF
 * parameters a device needs to derive that key again. The server stores it and never unwraps it;
 * it only refuses parameters that are too weak or sizes that can't be right.
 *
 * Bounds follow Bitwarden's (see shared/ANCHORS.md): PBKDF2-SHA256 600,000 to 2,000,000
 * iterations; Argon2id 2..10 iterations, 15..1024 MiB, parallelism 1..16.
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

/** zod schema of {@link Pbkdf2Params}. */
export const pbkdf2ParamsSchema = z
  .object({
    algorithm: z.literal('PBKDF2-SHA256'),
    iterations: z.number().int().min(600_000).max(2_000_000),
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

/** zod schema of {@link KdfParams}: a discriminated union on `algorithm`. */
export const kdfParamsSchema = z.discriminatedUnion('algorithm', [pbkdf2ParamsSchema, argon2idParamsSchema]);

/** PBKDF2 with HMAC-SHA256, at least 600,000 iterations. */
export type Pbkdf2Params = z.infer<typeof pbkdf2ParamsSchema>;
/** Argon2id within Bitwarden's bounds. */
export type Argon2idParams = z.infer<typeof argon2idParamsSchema>;
/**
 * How a device derives the wrapping key from the passphrase, stored as `vaults.kdf_params`.
 *
 * @example
 * ```ts
 * const kdf: KdfParams = { algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 };
 * ```
 */
export type KdfParams = z.infer<typeof kdfParamsSchema>;

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
export function toViolations(error: z.ZodError, prefix?: string, recordId?: string): RuleViolation[] {
  return error.issues.map((issue) => {
    const path = [prefix, ...issue.path].filter((p) => p !== undefined && p !== '').join('.') || '(input)';
    return recordId === undefined ? { path, rule: issue.message } : { path, rule: issue.message, recordId };
  });
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
