/**
 * Validation of everything a caller hands the sync service, before any SQL runs. Every rule that
 * breaks is reported at once, naming the record and the rule; nothing is written when any breaks.
 *
 * @module
 */
import { z } from 'zod';
import { toViolations, validateEnvelope, type KeyEnvelope } from '../envelope.js';
import { LimitExceededError, ValidationError, type RuleViolation } from '../errors.js';
import type { SyncLimits } from './types.js';

/** A change after validation: bytes are Buffers, and a delete has no ciphertext. */
export interface ValidChange {
  recordId: string;
  baseVersion: number;
  ciphertext: Buffer | null;
}

const MAX_INT4 = 2_147_483_647;
// Lone surrogates can't be stored as UTF-8: the driver would silently replace them, and the id
// read back would differ from the id sent.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Rules shared by user ids and record ids: PostgreSQL text can't hold NUL or lone surrogates. */
function textRules(value: string): string | null {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (LONE_SURROGATE.test(value)) return 'must be well-formed Unicode (no lone surrogates)';
  return null;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  return typeof value;
}

/**
 * Validates the authenticated user's id.
 * @throws ValidationError naming the rule
 */
export function validateUserId(userId: unknown): string {
  const rule =
    typeof userId !== 'string'
      ? `must be a string, not ${describeType(userId)}`
      : userId.length === 0 || userId.length > 255
        ? 'must be 1 to 255 characters'
        : textRules(userId);
  if (rule) throw new ValidationError([{ path: 'userId', rule }]);
  return userId as string;
}

function checkVersion(value: unknown, path: string, recordId: string | undefined, out: RuleViolation[]): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_INT4) {
    out.push(withRecord({ path, rule: `must be an integer from 0 to ${MAX_INT4}, not ${typeof value === 'number' ? String(value) : describeType(value)}` }, recordId));
    return 0;
  }
  return value;
}

function withRecord(v: RuleViolation, recordId: string | undefined): RuleViolation {
  return recordId === undefined ? v : { ...v, recordId };
}

/** Checks a record id and returns it if valid (`undefined` otherwise, with the violation recorded). */
function checkRecordId(value: unknown, path: string, limits: SyncLimits, out: RuleViolation[]): string | undefined {
  if (typeof value !== 'string') {
    out.push({ path, rule: `recordId must be a string, not ${describeType(value)}` });
    return undefined;
  }
  const chars = [...value].length;
  const rule =
    chars === 0 || chars > limits.maxRecordIdLength ? `recordId must be 1 to ${limits.maxRecordIdLength} characters` : textRules(value);
  if (rule) {
    // Name the record only when the id itself is printable; a NUL or huge id would garble the message.
    out.push(chars > 0 && chars <= limits.maxRecordIdLength && !value.includes('\u0000') ? { path, rule, recordId: value } : { path, rule });
    return undefined;
  }
  return value;
}

function checkCiphertext(value: unknown, path: string, recordId: string | undefined, limits: SyncLimits, out: RuleViolation[], over: RuleViolation[]): Buffer | null {
  if (!(value instanceof Uint8Array)) {
    out.push(withRecord({ path, rule: `ciphertext must be a Uint8Array, not ${describeType(value)}` }, recordId));
    return null;
  }
  if (value.length === 0) {
    out.push(withRecord({ path, rule: 'ciphertext must not be empty (send deleted: true to delete)' }, recordId));
    return null;
  }
  if (value.length > limits.maxRecordBytes) {
    over.push(withRecord({ path, rule: `ciphertext is ${value.length} bytes; the limit is ${limits.maxRecordBytes}` }, recordId));
    return null;
  }
  // A copy, not a view: a caller that reuses its buffer as soon as the call returns a promise must
  // not change what is written.
  return Buffer.from(value);
}

/** Adds a violation when the ciphertexts together are more than `max` bytes. */
function checkTotalBytes(ciphertexts: (Buffer | null)[], max: number, path: string, what: string, over: RuleViolation[]): void {
  let total = 0;
  for (const c of ciphertexts) total += c?.length ?? 0;
  if (total > max) over.push({ path, rule: `${what} carries at most ${max} bytes of ciphertext, not ${total}; split it` });
}

/** The parts every entry of a push or a rotation shares, checked by {@link eachEntry}. */
interface EntryHead {
  path: string;
  entry: Record<string, unknown>;
  recordId: string | undefined;
  baseVersion: number;
}

/** Checks that each entry is an object with a valid, unique `recordId` and `baseVersion`, then hands it to `visit`. */
function eachEntry(list: unknown[], prefix: string, batch: string, limits: SyncLimits, out: RuleViolation[], visit: (head: EntryHead) => void): void {
  const seen = new Set<string>();
  // entries(), not forEach: forEach skips the holes of a sparse array, which would accept them.
  for (const [i, raw] of list.entries()) {
    const path = `${prefix}.${i}`;
    if (typeof raw !== 'object' || raw === null) {
      out.push({ path, rule: `must be an object, not ${describeType(raw)}` });
      continue;
    }
    const entry = raw as Record<string, unknown>;
    const recordId = checkRecordId(entry.recordId, `${path}.recordId`, limits, out);
    if (recordId !== undefined) {
      if (seen.has(recordId)) out.push({ path: `${path}.recordId`, rule: `appears more than once in this ${batch}`, recordId });
      seen.add(recordId);
    }
    visit({ path, entry, recordId, baseVersion: checkVersion(entry.baseVersion, `${path}.baseVersion`, recordId, out) });
  }
}

function fail(out: RuleViolation[], over: RuleViolation[]): void {
  if (out.length > 0) throw new ValidationError(out);
  if (over.length > 0) throw new LimitExceededError(over);
}

/** Validated input of `push`. */
export interface ValidPush {
  changes: ValidChange[];
  atomic: boolean;
  cursor: string | null;
  /** The key version the ciphertext was encrypted under, when the push says. */
  keyVersion: number | null;
}

/**
 * Validates a push. Type and format errors win over limit errors, so a caller fixes the shape first.
 * @throws ValidationError | LimitExceededError
 */
export function validatePush(input: unknown, limits: SyncLimits): ValidPush {
  const out: RuleViolation[] = [];
  const over: RuleViolation[] = [];
  if (typeof input !== 'object' || input === null) throw new ValidationError([{ path: '(input)', rule: `must be an object, not ${describeType(input)}` }]);
  const { changes, atomic, cursor, keyVersion } = input as Record<string, unknown>;
  if (atomic !== undefined && typeof atomic !== 'boolean') out.push({ path: 'atomic', rule: 'must be a boolean' });
  const validCursor = checkCursor(cursor, out);
  let validKeyVersion: number | null = null;
  if (keyVersion !== undefined && keyVersion !== null) {
    if (typeof keyVersion !== 'number' || !Number.isInteger(keyVersion) || keyVersion < 1 || keyVersion > MAX_INT4) {
      out.push({ path: 'keyVersion', rule: `must be an integer from 1 to ${MAX_INT4}, not ${typeof keyVersion === 'number' ? String(keyVersion) : describeType(keyVersion)}` });
    } else {
      validKeyVersion = keyVersion;
    }
  }
  if (!Array.isArray(changes)) {
    out.push({ path: 'changes', rule: `must be an array, not ${describeType(changes)}` });
    fail(out, over);
  }
  const list = changes as unknown[];
  if (list.length > limits.maxChanges) {
    over.push({ path: 'changes', rule: `a push holds at most ${limits.maxChanges} changes, not ${list.length}` });
    fail(out, over);
  }
  const valid: ValidChange[] = [];
  eachEntry(list, 'changes', 'push', limits, out, ({ path, entry, recordId, baseVersion }) => {
    let ciphertext: Buffer | null = null;
    if (entry.deleted === true) {
      if (entry.ciphertext !== undefined) out.push(withRecord({ path: `${path}.ciphertext`, rule: 'a delete carries no ciphertext' }, recordId));
    } else if (entry.deleted === undefined || entry.deleted === false) {
      ciphertext = checkCiphertext(entry.ciphertext, `${path}.ciphertext`, recordId, limits, out, over);
    } else {
      out.push(withRecord({ path: `${path}.deleted`, rule: 'must be true, false or absent' }, recordId));
    }
    if (recordId !== undefined) valid.push({ recordId, baseVersion, ciphertext });
  });
  checkTotalBytes(valid.map((c) => c.ciphertext), limits.maxPushBytes, 'changes', 'a push', over);
  fail(out, over);
  return { changes: valid, atomic: atomic === true, cursor: validCursor, keyVersion: validKeyVersion };
}

function checkCursor(cursor: unknown, out: RuleViolation[]): string | null {
  if (cursor === undefined || cursor === null) return null;
  if (typeof cursor !== 'string') {
    out.push({ path: 'cursor', rule: `must be a string or null, not ${describeType(cursor)}` });
    return null;
  }
  return cursor;
}

/** Validated input of `pull`. */
export interface ValidPull {
  cursor: string | null;
  limit: number;
  maxBytes: number;
}

/**
 * Validates a pull and applies the default page size.
 * @throws ValidationError | LimitExceededError
 */
export function validatePull(input: unknown, limits: SyncLimits): ValidPull {
  const out: RuleViolation[] = [];
  const over: RuleViolation[] = [];
  const given = (input ?? {}) as Record<string, unknown>;
  if (typeof given !== 'object') throw new ValidationError([{ path: '(input)', rule: `must be an object, not ${describeType(input)}` }]);
  const cursor = checkCursor(given.cursor, out);
  const positive = (value: unknown, path: string, fallback: number, max: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      out.push({ path, rule: `must be a positive integer, not ${typeof value === 'number' ? String(value) : describeType(value)}` });
      return fallback;
    }
    if (value > max) over.push({ path, rule: `must be at most ${max}, not ${value}` });
    return value;
  };
  const limit = positive(given.limit, 'limit', limits.defaultPullLimit, limits.maxPullLimit);
  const maxBytes = positive(given.maxBytes, 'maxBytes', limits.defaultPullBytes, limits.maxPullBytes);
  fail(out, over);
  return { cursor, limit, maxBytes };
}

/** Validated input of `enableVault`. */
export interface ValidEnable extends KeyEnvelope {
  deviceFingerprint: string | null;
}

/**
 * Validates `enableVault` input.
 * @throws ValidationError
 */
export function validateEnable(input: unknown): ValidEnable {
  const given = asObject(input);
  const envelope = validateEnvelope({ wrappedKey: given.wrappedKey, salt: given.salt, kdfParams: given.kdfParams });
  const fp = given.deviceFingerprint;
  if (fp !== undefined && fp !== null) {
    const rule = typeof fp !== 'string' ? 'must be a string' : fp.length > 255 ? 'must be at most 255 characters' : textRules(fp);
    if (rule) throw new ValidationError([{ path: 'deviceFingerprint', rule }]);
  }
  return { ...envelope, deviceFingerprint: (fp as string | null | undefined) ?? null };
}

/** Validated input of `rewrapKey`. */
export interface ValidRewrap extends KeyEnvelope {
  expectedVersion: number;
}

/**
 * Validates `rewrapKey` input.
 * @throws ValidationError
 */
export function validateRewrap(input: unknown): ValidRewrap {
  const given = asObject(input);
  const out: RuleViolation[] = [];
  const expectedVersion = checkVersion(given.expectedVersion, 'expectedVersion', undefined, out);
  if (out.length > 0) throw new ValidationError(out);
  return { ...validateEnvelope({ wrappedKey: given.wrappedKey, salt: given.salt, kdfParams: given.kdfParams }), expectedVersion };
}

/** A re-encrypted record after validation. */
export interface ValidReencrypted {
  recordId: string;
  baseVersion: number;
  ciphertext: Buffer;
}

/** Validated input of `rotateKey`. */
export interface ValidRotate extends ValidRewrap {
  records: ValidReencrypted[];
}

/**
 * Validates the re-encrypted records of one `rotateKey` or `stageKeyRotation` call, within the
 * per-call limits (count and total bytes) and the per-record ones.
 * @throws ValidationError | LimitExceededError
 */
function validateReencrypted(records: unknown, limits: SyncLimits, call: string): ValidReencrypted[] {
  const out: RuleViolation[] = [];
  const over: RuleViolation[] = [];
  if (!Array.isArray(records)) throw new ValidationError([{ path: 'records', rule: `must be an array, not ${describeType(records)}` }]);
  if (records.length > limits.maxRotationRecords) {
    throw new LimitExceededError([{ path: 'records', rule: `${call} carries at most ${limits.maxRotationRecords} records, not ${records.length}; stage a larger rotation in chunks` }]);
  }
  const valid: ValidReencrypted[] = [];
  eachEntry(records, 'records', 'call', limits, out, ({ path, entry, recordId, baseVersion }) => {
    const ciphertext = checkCiphertext(entry.ciphertext, `${path}.ciphertext`, recordId, limits, out, over);
    if (recordId !== undefined && ciphertext) valid.push({ recordId, baseVersion, ciphertext });
  });
  checkTotalBytes(valid.map((r) => r.ciphertext), limits.maxRotationBytes, 'records', call, over);
  fail(out, over);
  return valid;
}

/**
 * Validates `rotateKey` input: the envelope and every re-encrypted record.
 * @throws ValidationError | LimitExceededError
 */
export function validateRotate(input: unknown, limits: SyncLimits): ValidRotate {
  const base = validateRewrap(input);
  return { ...base, records: validateReencrypted(asObject(input).records, limits, 'a rotateKey call') };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function checkRotationId(value: unknown): string {
  if (typeof value !== 'string' || !UUID.test(value)) {
    throw new ValidationError([{ path: 'rotationId', rule: `must be the rotationId beginKeyRotation returned (a lower-case UUID), not ${typeof value === 'string' ? 'that string' : describeType(value)}` }]);
  }
  return value;
}

/**
 * Validates `beginKeyRotation` input.
 * @throws ValidationError
 */
export function validateBeginRotation(input: unknown): { expectedVersion: number } {
  const out: RuleViolation[] = [];
  const expectedVersion = checkVersion(asObject(input).expectedVersion, 'expectedVersion', undefined, out);
  if (out.length > 0) throw new ValidationError(out);
  return { expectedVersion };
}

/** Validated input of `stageKeyRotation`. */
export interface ValidStage {
  rotationId: string;
  records: ValidReencrypted[];
  remove: string[];
}

/**
 * Validates `stageKeyRotation` input: the rotation id, one chunk of records within the per-call
 * limits, and the ids to remove. An id may not be both staged and removed in one call.
 * @throws ValidationError | LimitExceededError
 */
export function validateStage(input: unknown, limits: SyncLimits): ValidStage {
  const given = asObject(input);
  const rotationId = checkRotationId(given.rotationId);
  const remove = given.remove ?? [];
  if (!Array.isArray(remove)) throw new ValidationError([{ path: 'remove', rule: `must be an array of record ids, not ${describeType(remove)}` }]);
  if (remove.length > limits.maxRotationRecords) {
    throw new LimitExceededError([{ path: 'remove', rule: `a stageKeyRotation call removes at most ${limits.maxRotationRecords} records, not ${remove.length}` }]);
  }
  const records = validateReencrypted(given.records, limits, 'a stageKeyRotation call');
  const out: RuleViolation[] = [];
  const staged = new Set(records.map((r) => r.recordId));
  const removed = new Set<string>();
  for (const [i, entry] of remove.entries()) {
    const id = checkRecordId(entry, `remove.${i}`, limits, out);
    if (id === undefined) continue;
    if (staged.has(id)) out.push({ path: `remove.${i}`, rule: 'is also staged in this call', recordId: id });
    removed.add(id);
  }
  if (out.length > 0) throw new ValidationError(out);
  return { rotationId, records, remove: [...removed] };
}

/** Validated input of `commitKeyRotation`. */
export interface ValidCommit extends ValidRewrap {
  rotationId: string;
}

/**
 * Validates `commitKeyRotation` input: the rotation id and the new envelope.
 * @throws ValidationError
 */
export function validateCommit(input: unknown): ValidCommit {
  const rotationId = checkRotationId(asObject(input).rotationId);
  return { ...validateRewrap(input), rotationId };
}

/**
 * Validates `abortKeyRotation` input.
 * @throws ValidationError
 */
export function validateAbort(input: unknown): { rotationId: string } {
  return { rotationId: checkRotationId(asObject(input).rotationId) };
}

/** Validated input of `purgeTombstones`. */
export interface ValidPurge {
  olderThan: Date;
  userId: string | null;
}

// PostgreSQL's timestamptz holds years 1 to 294276, but JavaScript dates reach further both ways.
const purgeSchema = z
  .object({
    olderThan: z
      .date({ invalid_type_error: 'must be a Date' })
      .min(new Date('0001-01-01T00:00:00Z'), 'must be a date from year 1 to 9999')
      .max(new Date('9999-12-31T23:59:59.999Z'), 'must be a date from year 1 to 9999'),
  })
  .passthrough();

/**
 * Validates `purgeTombstones` input.
 * @throws ValidationError
 */
export function validatePurge(input: unknown): ValidPurge {
  const parsed = purgeSchema.safeParse(input);
  if (!parsed.success) throw new ValidationError(toViolations(parsed.error));
  const userId = (input as { userId?: unknown }).userId;
  return { olderThan: parsed.data.olderThan, userId: userId === undefined || userId === null ? null : validateUserId(userId) };
}

function asObject(input: unknown): Record<string, unknown> {
  if (typeof input !== 'object' || input === null) throw new ValidationError([{ path: '(input)', rule: `must be an object, not ${describeType(input)}` }]);
  return input as Record<string, unknown>;
}
