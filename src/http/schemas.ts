/**
 * The request and response schemas of the HTTP API, in zod 4 (`zod/v4`, shipped by the pinned
 * zod 3.25): the request schemas validate bodies and query strings, and the OpenAPI document is
 * generated from the very same objects (see openapi.ts), so the two can't drift apart.
 *
 * The schemas check shape and encoding only (types, base64url, unknown fields). The ranges and
 * limits stay the library's own: `SyncService` checks them again and reports them with its own
 * error codes, so a rule lives in one place.
 *
 * @module
 */
import { z } from 'zod/v4';
import { fromBase64Url } from './codec.js';

/** Bytes on the wire: base64url without padding, decoded to a Buffer. */
export const bytesSchema = z
  .string()
  .meta({ format: 'base64url', description: 'bytes, base64url without padding' })
  .transform((text, ctx) => {
    const bytes = fromBase64Url(text);
    if (bytes === null) {
      ctx.issues.push({ code: 'custom', message: 'must be base64url without padding', input: text });
      return z.NEVER;
    }
    return bytes;
  });

const version = z.number().int().min(0).meta({ description: 'a version as the server reported it' });

/** The KDF parameters, by shape; their bounds are the library's (`kdfParamsSchema`). */
export const kdfParamsWire = z.discriminatedUnion('algorithm', [
  z.strictObject({ algorithm: z.literal('PBKDF2'), iterations: z.number().int(), saltLength: z.number().int() }),
  z.strictObject({
    algorithm: z.literal('Argon2id'),
    memoryMiB: z.number().int(),
    iterations: z.number().int(),
    parallelism: z.number().int(),
    saltLength: z.number().int(),
  }),
  z.strictObject({ algorithm: z.literal('PBKDF2-SHA256'), iterations: z.number().int(), saltLength: z.number().int() }).meta({ deprecated: true }),
]);

const envelopeFields = { wrappedKey: bytesSchema, salt: bytesSchema, kdfParams: kdfParamsWire };

/** Body of `POST /v1/vault`. */
export const enableVaultBody = z.strictObject({ ...envelopeFields, deviceFingerprint: z.string().nullable().optional() }).meta({ title: 'EnableVaultInput' });

/** Body of `PUT /v1/vault/envelope`. */
export const rewrapBody = z.strictObject({ expectedVersion: version, ...envelopeFields }).meta({ title: 'RewrapKeyInput' });

const reencryptedRecord = z.strictObject({ recordId: z.string(), baseVersion: version, ciphertext: bytesSchema });

/** Body of `POST /v1/vault/rotate`. */
export const rotateBody = z.strictObject({ expectedVersion: version, ...envelopeFields, records: z.array(reencryptedRecord) }).meta({ title: 'RotateKeyInput' });

/** Body of `POST /v1/vault/rotations`. */
export const beginRotationBody = z.strictObject({ expectedVersion: version }).meta({ title: 'BeginKeyRotationInput' });

/** Body of `POST /v1/vault/rotations/{rotationId}/records`. */
export const stageRotationBody = z.strictObject({ records: z.array(reencryptedRecord), remove: z.array(z.string()).optional() }).meta({ title: 'StageKeyRotationInput' });

/** Body of `POST /v1/vault/rotations/{rotationId}/commit`. */
export const commitRotationBody = rewrapBody.meta({ title: 'CommitKeyRotationInput' });

const upsertChange = z.strictObject({ recordId: z.string(), baseVersion: version, ciphertext: bytesSchema, deleted: z.literal(false).optional() });
const deleteChange = z.strictObject({ recordId: z.string(), baseVersion: version, deleted: z.literal(true) });

/** Body of `POST /v1/vault/push`. */
export const pushBody = z
  .strictObject({
    changes: z.array(z.union([upsertChange, deleteChange])),
    atomic: z.boolean().optional(),
    cursor: z.string().nullable().optional(),
    keyVersion: z.number().int().min(1).optional(),
  })
  .meta({ title: 'PushInput' });

const positiveInteger = z
  .string()
  .regex(/^[1-9][0-9]{0,9}$/, 'must be a positive integer')
  .transform(Number)
  .meta({ type: 'integer' });

/** Query of `GET /v1/vault/changes`: an absent or empty cursor is a full sync. */
export const pullQuery = z.strictObject({
  cursor: z.string().optional(),
  limit: positiveInteger.optional(),
  maxBytes: positiveInteger.optional(),
});

// Response shapes, for the OpenAPI document only: the server builds them from the library's types.
const isoDate = z.string().meta({ format: 'date-time' });
const b64 = z.string().meta({ format: 'base64url' });

/** A record as the server holds it. */
export const recordStateSchema = z
  .object({ recordId: z.string(), version: z.number().int(), deleted: z.boolean(), ciphertext: b64.nullable(), updatedAt: isoDate })
  .meta({ title: 'RecordState' });

/** `VaultInfo`. */
export const vaultInfoSchema = z
  .object({
    userId: z.string(),
    wrappedKey: b64,
    salt: b64,
    kdfParams: kdfParamsWire,
    deviceFingerprint: z.string().nullable(),
    version: z.number().int(),
    keyVersion: z.number().int(),
    enabledAt: isoDate,
    updatedAt: isoDate,
  })
  .meta({ title: 'VaultInfo' });

/** `PushResult`. */
export const pushResultSchema = z
  .object({
    applied: z.array(z.object({ recordId: z.string(), version: z.number().int() })),
    conflicts: z.array(
      z.object({ recordId: z.string(), reason: z.enum(['version_mismatch', 'gone', 'exists', 'version_exhausted']), server: recordStateSchema.nullable() }),
    ),
    cursor: z.string(),
  })
  .meta({ title: 'PushResult' });

/** `PullResult`. */
export const pullResultSchema = z.object({ changes: z.array(recordStateSchema), cursor: z.string(), hasMore: z.boolean() }).meta({ title: 'PullResult' });

/** `SyncLimits` plus `maxBodyBytes`. */
export const configSchema = z
  .object({
    maxChanges: z.number().int(),
    maxRecordBytes: z.number().int(),
    maxRecordIdLength: z.number().int(),
    maxPullLimit: z.number().int(),
    defaultPullLimit: z.number().int(),
    maxPullBytes: z.number().int(),
    defaultPullBytes: z.number().int(),
    maxRotationRecords: z.number().int(),
    maxPushBytes: z.number().int(),
    maxRotationBytes: z.number().int(),
    maxVaultRecords: z.number().int(),
    maxVaultBytes: z.number().int(),
    maxBodyBytes: z.number().int(),
  })
  .meta({ title: 'Config' });

/** Every error body. */
export const errorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      violations: z.array(z.object({ recordId: z.string().optional(), path: z.string(), rule: z.string() })).optional(),
    }),
  })
  .meta({ title: 'Error' });

/** `GET /v1/health`. */
export const healthSchema = z.object({ status: z.enum(['ok', 'unavailable']), database: z.enum(['ok', 'unavailable', 'unchecked']) }).meta({ title: 'Health' });
