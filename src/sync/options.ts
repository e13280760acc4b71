/**
 * The options of `new SyncService(em, options)`, checked once at construction. A bad option would
 * otherwise fail late and far from its cause: `maxChanges: undefined` silently removed the limit,
 * `lockTimeoutMs: NaN` made every call fail with a database error, and `lockTimeoutMs: 0` means
 * "wait forever" to PostgreSQL. Every broken option is named in one {@link ConfigurationError}.
 *
 * @module
 */
import { z } from 'zod';
import { ConfigurationError } from '../errors.js';
import { DEFAULT_LIMITS, type SyncLimits, type SyncServiceOptions } from './types.js';

/** `lockTimeoutMs` when the options don't say: long enough for a big rotation, short enough for a retry to help. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;

/**
 * Largest `lockTimeoutMs`: PostgreSQL's `lock_timeout` is an `int` of milliseconds. (0 is not
 * accepted either: to PostgreSQL it turns the limit off.)
 */
export const MAX_LOCK_TIMEOUT_MS = 2_147_483_647;

/**
 * `maxConcurrentCallsPerVault` when the options don't say. Writers of one vault queue on its row
 * lock, so a second call in flight is already waiting and a third buys no throughput: 2 lets one
 * device's pull or push run beside another's without a retry, and keeps one vault at a fifth of
 * the default pool of 10 connections. See `VaultGate`.
 */
export const DEFAULT_MAX_CONCURRENT_CALLS_PER_VAULT = 2;

/** The options after validation, with every default filled in. */
export interface ResolvedSyncOptions {
  limits: Readonly<SyncLimits>;
  lockTimeoutMs: number;
  maxConcurrentCallsPerVault: number;
}

/** A positive integer that survives arithmetic exactly; says what it got when it fails. */
function positiveInteger(max: number, unit = ''): z.ZodType<number> {
  const rule = `must be an integer from 1 to ${max}${unit}`;
  return z.unknown().superRefine((value, ctx) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${rule}, not ${describe(value)}` });
    }
  }) as unknown as z.ZodType<number>;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 20))}`;
  return Array.isArray(value) ? 'an array' : typeof value;
}

// Built from DEFAULT_LIMITS, so a limit added there is validated here without a change. A record
// rather than an object schema, because it checks every key that is present: `{ maxChanges:
// undefined }` is a mistake (the spread over the defaults would remove the limit), not "default".
const limitKeys = Object.keys(DEFAULT_LIMITS) as [keyof SyncLimits, ...(keyof SyncLimits)[]];
const limitsSchema = z.record(
  z.string().superRefine((key, ctx) => {
    if (!(limitKeys as string[]).includes(key)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `unknown limit (known: ${limitKeys.join(', ')})` });
  }),
  positiveInteger(Number.MAX_SAFE_INTEGER),
);

const optionsSchema = z
  .object({
    limits: limitsSchema.optional(),
    lockTimeoutMs: positiveInteger(MAX_LOCK_TIMEOUT_MS, ' ms (PostgreSQL lock_timeout; 0 would mean no limit)').optional(),
    maxConcurrentCallsPerVault: positiveInteger(Number.MAX_SAFE_INTEGER).optional(),
    // Type and format (32 bytes or 64 hex digits) are checked by ClaimKeySource, which also reads
    // the VAULT_DB_CLAIM_KEY fallback and words its errors without echoing the key.
    claimKey: z.unknown().optional(),
  })
  .strict();

/** Pairs where the default must not exceed the maximum, or every call that relies on the default fails. */
const DEFAULT_WITHIN_MAX: [keyof SyncLimits, keyof SyncLimits][] = [
  ['defaultPullLimit', 'maxPullLimit'],
  ['defaultPullBytes', 'maxPullBytes'],
];

/**
 * Validates the options of a `SyncService` and fills in the defaults. A top-level option that is
 * `undefined` takes its default; a key of `limits` that is present must hold a valid value.
 *
 * @throws ConfigurationError naming every bad option, e.g. `lockTimeoutMs: must be an integer from 1 to 2147483647 ms …, not NaN`
 * @example
 * ```ts
 * resolveSyncOptions({ lockTimeoutMs: 2000, limits: { maxChanges: 500 } });
 * ```
 */
export function resolveSyncOptions(options: SyncServiceOptions | undefined): ResolvedSyncOptions {
  const parsed = optionsSchema.safeParse(options === undefined ? {} : options);
  if (!parsed.success) throw invalid(parsed.error.issues.flatMap(describeIssue));
  const limits: Readonly<SyncLimits> = Object.freeze({ ...DEFAULT_LIMITS, ...parsed.data.limits });
  const crossed = DEFAULT_WITHIN_MAX.filter(([dflt, max]) => limits[dflt] > limits[max]);
  if (crossed.length > 0) throw invalid(crossed.map(([dflt, max]) => `limits.${dflt}: must not exceed limits.${max} (${limits[max]}), not ${limits[dflt]}`));
  return {
    limits,
    lockTimeoutMs: parsed.data.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
    maxConcurrentCallsPerVault: parsed.data.maxConcurrentCallsPerVault ?? DEFAULT_MAX_CONCURRENT_CALLS_PER_VAULT,
  };
}

function describeIssue(issue: z.ZodIssue): string[] {
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    const known = Object.keys(optionsSchema.shape).join(', ');
    return issue.keys.map((key) => `${key}: unknown option (known: ${known})`);
  }
  return [`${issue.path.join('.') || 'options'}: ${issue.message}`];
}

function invalid(problems: string[]): ConfigurationError {
  return new ConfigurationError(`Invalid SyncService options: ${problems.join('; ')}.`);
}
