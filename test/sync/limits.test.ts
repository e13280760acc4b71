/**
 * Limits and bad input: a typed error that names the offending record and rule, and nothing of
 * the push written. "Nothing" is checked with a fingerprint of every row of both tables, so even
 * a moved feed counter or a touched timestamp would fail the test.
 */
import { describe, expect, test } from 'vitest';
import { LimitExceededError, ValidationError, type RuleViolation } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { DEFAULT_LIMITS, type Change, type PushInput } from '../../src/sync/types.js';
import { bytes, del, newVault, put, rejectionOf, setupSyncDatabase, storedRecords, tableDigest } from './support/sync.js';

const ctx = setupSyncDatabase();

/** A vault holding one record "a" at version 1, so an invalid push could also damage existing data. */
async function vaultWithRecord(sync: SyncService = ctx.sync): Promise<string> {
  const user = await newVault(sync);
  await sync.push(user, { changes: [put('a', 0)] });
  return user;
}

/** Runs a push that must be refused, checks that it wrote nothing, and returns the error. */
async function refusedPush(user: string, input: PushInput, sync: SyncService = ctx.sync): Promise<ValidationError | LimitExceededError> {
  const before = await tableDigest(ctx.db.pool);
  const error = await rejectionOf(sync.push(user, input));
  expect(await tableDigest(ctx.db.pool)).toEqual(before);
  if (!(error instanceof ValidationError || error instanceof LimitExceededError)) throw error;
  return error;
}

const rules = (violations: readonly RuleViolation[]) => violations.map((v) => v.rule).join(' | ');

describe('default limits', () => {
  test('are the documented ones', () => {
    expect(ctx.sync.limits).toMatchObject({ maxChanges: 1000, maxRecordBytes: 64 * 1024, maxRecordIdLength: 255 });
    expect(DEFAULT_LIMITS.maxChanges).toBe(1000);
  });

  test('1,001 changes is LimitExceededError; 1,000 is accepted', async () => {
    const user = await vaultWithRecord();
    const changes = (n: number): Change[] => Array.from({ length: n }, (_, i) => put(`n${i}`, 0, bytes(8)));
    const error = await refusedPush(user, { changes: changes(1001) });
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error).toMatchObject({ code: 'limit_exceeded', retryable: false });
    expect(rules(error.violations)).toContain('1000');
    expect((await ctx.sync.push(user, { changes: changes(1000) })).applied).toHaveLength(1000);
  });

  test('a ciphertext over 64 KiB is LimitExceededError naming the record; exactly 64 KiB is accepted', async () => {
    const user = await vaultWithRecord();
    const error = await refusedPush(user, { changes: [put('ok', 0, bytes(10)), put('huge', 0, bytes(64 * 1024 + 1))] });
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error.recordId).toBe('huge');
    expect(error.message).toContain('huge');
    // The error names the size rule but never echoes the bytes.
    expect(rules(error.violations)).toContain(String(64 * 1024));
    expect((await ctx.sync.push(user, { changes: [put('max', 0, bytes(64 * 1024))] })).applied).toEqual([{ recordId: 'max', version: 1 }]);
  });

  test('a record id of "" or of 256 characters is a ValidationError; 255 characters (even astral ones) are accepted', async () => {
    const user = await vaultWithRecord();
    expect(await refusedPush(user, { changes: [put('', 0)] })).toBeInstanceOf(ValidationError);
    const tooLong = await refusedPush(user, { changes: [put('x'.repeat(256), 0)] });
    expect(tooLong).toBeInstanceOf(ValidationError);
    expect(rules(tooLong.violations)).toContain('255');

    // The limit counts characters (code points), not UTF-16 units: 255 emoji are 510 units.
    const emoji = '\u{1F516}'.repeat(255);
    const longest = 'y'.repeat(255);
    expect((await ctx.sync.push(user, { changes: [put(longest, 0), put(emoji, 0)] })).applied).toHaveLength(2);
    const stored = await storedRecords(ctx.db.pool, user);
    expect(stored.has(longest) && stored.has(emoji)).toBe(true);
  });

  test('a record id that appears twice in one push is a ValidationError naming it', async () => {
    const user = await vaultWithRecord();
    const error = await refusedPush(user, { changes: [put('dup', 0), put('other', 0), del('dup', 1)] });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.recordId).toBe('dup');
    expect(error.message).toContain('dup');
  });

  test.each([
    ['negative', -1],
    ['fractional', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['above int4', 2 ** 31],
    ['huge', Number.MAX_SAFE_INTEGER + 2],
    ['a numeric string', '1'],
    ['missing', undefined],
  ])('a %s baseVersion is a ValidationError naming the record', async (_name, baseVersion) => {
    const user = await vaultWithRecord();
    const bad = { recordId: 'a', baseVersion, ciphertext: bytes() } as unknown as Change;
    const error = await refusedPush(user, { changes: [put('fine', 0), bad] });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.recordId).toBe('a');
    expect(error.violations.some((v) => v.recordId === 'a' && v.path.endsWith('baseVersion'))).toBe(true);
  });

  test('other malformed changes are ValidationErrors and write nothing', async () => {
    const user = await vaultWithRecord();
    const cases: unknown[] = [
      { recordId: 'a', baseVersion: 1, ciphertext: 'not bytes' },
      { recordId: 'a', baseVersion: 1, ciphertext: new Uint8Array(0) },
      { recordId: 'a', baseVersion: 1 },
      { recordId: 'a', baseVersion: 1, deleted: true, ciphertext: bytes() },
      { recordId: 'a', baseVersion: 1, deleted: 'yes', ciphertext: bytes() },
      { recordId: 7, baseVersion: 1, ciphertext: bytes() },
      { recordId: 'nul\u0000', baseVersion: 0, ciphertext: bytes() },
      { recordId: 'lone\uD800', baseVersion: 0, ciphertext: bytes() },
      null,
    ];
    for (const change of cases) {
      const error = await refusedPush(user, { changes: [put('fine', 0), change as Change] });
      expect(error, JSON.stringify(change)).toBeInstanceOf(ValidationError);
    }
    expect(await refusedPush(user, { changes: 'nope' as unknown as Change[] })).toBeInstanceOf(ValidationError);
    expect(await refusedPush(user, { changes: [], atomic: 'yes' as unknown as boolean })).toBeInstanceOf(ValidationError);
  });

  test('every broken rule is reported at once, and format errors win over limit errors', async () => {
    const user = await vaultWithRecord();
    const error = await refusedPush(user, { changes: [put('', 0), put('b', -1), put('c', 0, bytes(64 * 1024 + 1))] });
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.violations.length).toBeGreaterThanOrEqual(2);
  });

  test('in atomic mode too, an invalid change refuses the push before anything is written', async () => {
    const user = await vaultWithRecord();
    expect(await refusedPush(user, { atomic: true, changes: [put('a', 1), put('b', 0.5)] })).toBeInstanceOf(ValidationError);
    expect((await storedRecords(ctx.db.pool, user)).get('a')?.version).toBe(1);
  });
});

describe('pull limits', () => {
  test('limit and maxBytes above the maximum are LimitExceededError; zero, negative or fractional ones are ValidationError', async () => {
    const user = await vaultWithRecord();
    expect(await rejectionOf(ctx.sync.pull(user, { limit: DEFAULT_LIMITS.maxPullLimit + 1 }))).toBeInstanceOf(LimitExceededError);
    expect(await rejectionOf(ctx.sync.pull(user, { maxBytes: DEFAULT_LIMITS.maxPullBytes + 1 }))).toBeInstanceOf(LimitExceededError);
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(await rejectionOf(ctx.sync.pull(user, { limit: bad }))).toBeInstanceOf(ValidationError);
      expect(await rejectionOf(ctx.sync.pull(user, { maxBytes: bad }))).toBeInstanceOf(ValidationError);
    }
    expect((await ctx.sync.pull(user, { limit: DEFAULT_LIMITS.maxPullLimit, maxBytes: DEFAULT_LIMITS.maxPullBytes })).changes).toHaveLength(1);
  });
});

describe('custom limits', () => {
  const limits = { maxChanges: 3, maxRecordBytes: 100, maxRecordIdLength: 5, maxPullLimit: 2, defaultPullLimit: 1 };
  const custom = () => new SyncService(ctx.db.orm.em, { limits });

  test('are merged over the defaults', () => {
    expect(custom().limits).toEqual({ ...DEFAULT_LIMITS, ...limits });
  });

  test('maxChanges, maxRecordBytes and maxRecordIdLength are enforced at the configured values', async () => {
    const sync = custom();
    const user = await vaultWithRecord(sync);
    expect(await refusedPush(user, { changes: [put('b', 0), put('c', 0), put('d', 0), put('e', 0)] }, sync)).toBeInstanceOf(LimitExceededError);
    const big = await refusedPush(user, { changes: [put('b', 0, bytes(101))] }, sync);
    expect(big).toBeInstanceOf(LimitExceededError);
    expect(big.recordId).toBe('b');
    const longId = await refusedPush(user, { changes: [put('abcdef', 0)] }, sync);
    expect(longId).toBeInstanceOf(ValidationError);
    expect(rules(longId.violations)).toContain('5');

    // Right at every limit is fine.
    const atLimits = await sync.push(user, { changes: [put('abcde', 0, bytes(100)), put('b', 0), put('c', 0)] });
    expect(atLimits.applied).toHaveLength(3);
    // The default service still takes what the custom one refuses: limits are per instance.
    expect((await ctx.sync.push(user, { changes: [put('abcdef', 0, bytes(101))] })).applied).toHaveLength(1);
  });

  test('pull uses the configured default and maximum page sizes', async () => {
    const sync = custom();
    const user = await newVault(sync);
    await sync.push(user, { changes: [put('a', 0), put('b', 0), put('c', 0)] });
    const page = await sync.pull(user, {});
    expect(page.changes).toHaveLength(1);
    expect(page.hasMore).toBe(true);
    expect(await rejectionOf(sync.pull(user, { limit: 3 }))).toBeInstanceOf(LimitExceededError);
    expect((await sync.pull(user, { limit: 2 })).changes).toHaveLength(2);
  });
});
