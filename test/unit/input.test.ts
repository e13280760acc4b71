/**
 * Input validation (src/sync/input.ts) without a database: every rule, its bound on both sides,
 * and the exact violation list (path, rule, record) it reports. The violation list is the API a
 * client branches on, so each test asserts it whole: emptying it, dropping a record id or a path
 * fails here. The service's wiring of these validators is tested on PostgreSQL in test/sync/.
 */
import { describe, expect, test } from 'vitest';
import { LimitExceededError, ValidationError, type RuleViolation } from '../../src/errors.js';
import {
  validateAbort,
  validateBeginRotation,
  validateCommit,
  validateEnable,
  validatePull,
  validatePurge,
  validatePush,
  validateRewrap,
  validateRotate,
  validateStage,
  validateUserId,
} from '../../src/sync/input.js';
import { DEFAULT_LIMITS, type SyncLimits } from '../../src/sync/types.js';

const MAX_INT4 = 2_147_483_647;
const ROTATION_ID = '0b7e7a52-3c1f-4b8e-9a51-2f0c5d8e1a77';

/** Small limits, so each bound is reached with a handful of bytes. */
const limits: SyncLimits = {
  ...DEFAULT_LIMITS,
  maxChanges: 3,
  maxRecordBytes: 8,
  maxRecordIdLength: 5,
  maxPushBytes: 12,
  maxRotationRecords: 2,
  maxRotationBytes: 12,
  maxPullLimit: 50,
  defaultPullLimit: 20,
  maxPullBytes: 5000,
  defaultPullBytes: 1000,
};

const envelope = () => ({
  wrappedKey: new Uint8Array(32).fill(1),
  salt: new Uint8Array(16).fill(2),
  kdfParams: { algorithm: 'PBKDF2' as const, iterations: 600_000, saltLength: 16 },
});

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);

/** The error `run` throws, checked to be of `kind`. */
function thrown<E extends ValidationError | LimitExceededError>(kind: new (v: RuleViolation[]) => E, run: () => unknown): E {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(kind);
  return caught as E;
}

/** The violations of the ValidationError `run` throws. */
const invalid = (run: () => unknown) => thrown(ValidationError, run).violations;
/** The violations of the LimitExceededError `run` throws. */
const overLimit = (run: () => unknown) => thrown(LimitExceededError, run).violations;

describe('validateUserId', () => {
  test.each([
    ['a number', 5, 'must be a string, not number'],
    ['null', null, 'must be a string, not null'],
    ['undefined', undefined, 'must be a string, not undefined'],
    ['an array', ['u'], 'must be a string, not an array'],
    ['NaN', Number.NaN, 'must be a string, not NaN'],
    ['empty', '', 'must be 1 to 255 characters'],
    ['256 characters', 'u'.repeat(256), 'must be 1 to 255 characters'],
    ['a NUL', 'a\u0000b', 'must not contain NUL characters'],
    ['a lone high surrogate at the end', 'ab\uD800', 'must be well-formed Unicode (no lone surrogates)'],
    ['a lone high surrogate before a letter', '\uD800b', 'must be well-formed Unicode (no lone surrogates)'],
    ['a lone low surrogate', 'a\uDC00', 'must be well-formed Unicode (no lone surrogates)'],
    ['a lone low surrogate at the start', '\uDC00a', 'must be well-formed Unicode (no lone surrogates)'],
  ])('%s is refused', (_label, userId, rule) => {
    expect(invalid(() => validateUserId(userId))).toStrictEqual([{ path: 'userId', rule }]);
  });

  test.each([
    ['one character', 'u'],
    ['255 characters', 'u'.repeat(255)],
    ['a surrogate pair', 'user-\uD83D\uDE00'],
  ])('%s is accepted and returned as is', (_label, userId) => {
    expect(validateUserId(userId)).toBe(userId);
  });
});

describe('validatePush: the input and its top-level fields', () => {
  test.each([
    [null, 'null'],
    ['push', 'string'],
    [undefined, 'undefined'],
  ])('%o is refused as a whole', (input, type) => {
    expect(invalid(() => validatePush(input, limits))).toStrictEqual([{ path: '(input)', rule: `must be an object, not ${type}` }]);
  });

  test('defaults: not atomic, no cursor, no key version', () => {
    expect(validatePush({ changes: [] }, limits)).toStrictEqual({ changes: [], atomic: false, cursor: null, keyVersion: null });
  });

  test('given values are returned', () => {
    expect(validatePush({ changes: [], atomic: true, cursor: 'abc', keyVersion: MAX_INT4 }, limits)).toStrictEqual({ changes: [], atomic: true, cursor: 'abc', keyVersion: MAX_INT4 });
    expect(validatePush({ changes: [], atomic: false, cursor: null, keyVersion: null }, limits)).toStrictEqual({ changes: [], atomic: false, cursor: null, keyVersion: null });
    expect(validatePush({ changes: [], keyVersion: 1 }, limits).keyVersion).toBe(1);
  });

  test('every bad field is reported at once, with changes that are not an array', () => {
    expect(invalid(() => validatePush({ changes: 'x', atomic: 'yes', cursor: 5, keyVersion: 0 }, limits))).toStrictEqual([
      { path: 'atomic', rule: 'must be a boolean' },
      { path: 'cursor', rule: 'must be a string or null, not number' },
      { path: 'keyVersion', rule: `must be an integer from 1 to ${MAX_INT4}, not 0` },
      { path: 'changes', rule: 'must be an array, not string' },
    ]);
  });

  test.each([
    [MAX_INT4 + 1, `not ${MAX_INT4 + 1}`],
    [1.5, 'not 1.5'],
    [-1, 'not -1'],
    ['2', 'not string'],
    [Number.NaN, 'not NaN'],
  ])('keyVersion %s is refused', (keyVersion, shown) => {
    expect(invalid(() => validatePush({ changes: [], keyVersion }, limits))).toStrictEqual([{ path: 'keyVersion', rule: `must be an integer from 1 to ${MAX_INT4}, ${shown}` }]);
  });

  test('changes missing entirely', () => {
    expect(invalid(() => validatePush({}, limits))).toStrictEqual([{ path: 'changes', rule: 'must be an array, not undefined' }]);
  });

  test('more changes than maxChanges is a limit, and exactly maxChanges passes', () => {
    const change = (i: number) => ({ recordId: `r${i}`, baseVersion: 0, ciphertext: bytes(1) });
    expect(overLimit(() => validatePush({ changes: [0, 1, 2, 3].map(change) }, limits))).toStrictEqual([{ path: 'changes', rule: 'a push holds at most 3 changes, not 4' }]);
    expect(validatePush({ changes: [0, 1, 2].map(change) }, limits).changes).toHaveLength(3);
  });

  test('a shape error wins over the count limit', () => {
    const changes = Array.from({ length: 4 }, () => null);
    expect(invalid(() => validatePush({ changes, atomic: 1 }, limits))).toStrictEqual([{ path: 'atomic', rule: 'must be a boolean' }]);
  });
});

describe('validatePush: each change', () => {
  test('a write, an explicit deleted: false and a delete are returned in order, bytes copied', () => {
    const sent = bytes(3, 9);
    const valid = validatePush(
      {
        changes: [
          { recordId: 'a', baseVersion: 0, ciphertext: sent },
          { recordId: 'b', baseVersion: 4, ciphertext: bytes(8), deleted: false },
          { recordId: 'c', baseVersion: MAX_INT4, deleted: true },
        ],
      },
      limits,
    );
    expect(valid.changes).toStrictEqual([
      { recordId: 'a', baseVersion: 0, ciphertext: Buffer.from([9, 9, 9]) },
      { recordId: 'b', baseVersion: 4, ciphertext: Buffer.from(bytes(8)) },
      { recordId: 'c', baseVersion: MAX_INT4, ciphertext: null },
    ]);
    expect(Buffer.isBuffer(valid.changes[0]?.ciphertext)).toBe(true);
    // A copy: the caller may reuse its buffer as soon as the call returns.
    sent.fill(0);
    expect(valid.changes[0]?.ciphertext).toStrictEqual(Buffer.from([9, 9, 9]));
  });

  test('an entry that is not an object, including the hole of a sparse array', () => {
    // eslint-disable-next-line no-sparse-arrays
    const changes = [null, 5, , ['x']];
    expect(invalid(() => validatePush({ changes }, { ...limits, maxChanges: 4 }))).toStrictEqual([
      { path: 'changes.0', rule: 'must be an object, not null' },
      { path: 'changes.1', rule: 'must be an object, not number' },
      { path: 'changes.2', rule: 'must be an object, not undefined' },
      { path: 'changes.3.recordId', rule: 'recordId must be a string, not undefined' },
      { path: 'changes.3.baseVersion', rule: `must be an integer from 0 to ${MAX_INT4}, not undefined` },
      { path: 'changes.3.ciphertext', rule: 'ciphertext must be a Uint8Array, not undefined' },
    ]);
  });

  test.each([
    ['not a string', 7, { rule: 'recordId must be a string, not number' }],
    ['empty', '', { rule: 'recordId must be 1 to 5 characters' }],
    ['one character too long', 'abcdef', { rule: 'recordId must be 1 to 5 characters' }],
    ['a NUL (not named: it would garble the message)', 'a\u0000', { rule: 'must not contain NUL characters' }],
    ['a lone surrogate (named)', 'a\uD800', { rule: 'must be well-formed Unicode (no lone surrogates)', recordId: 'a\uD800' }],
  ])('a record id that is %s', (_label, recordId, expected) => {
    expect(invalid(() => validatePush({ changes: [{ recordId, baseVersion: 0, ciphertext: bytes(1) }] }, limits))).toStrictEqual([{ path: 'changes.0.recordId', ...expected }]);
  });

  test('a record id of exactly the maximum length that breaks a text rule is still named', () => {
    expect(invalid(() => validatePush({ changes: [{ recordId: 'abcd\uD800', baseVersion: 0, ciphertext: bytes(1) }] }, limits))).toStrictEqual([
      { path: 'changes.0.recordId', rule: 'must be well-formed Unicode (no lone surrogates)', recordId: 'abcd\uD800' },
    ]);
  });

  test('two invalid record ids are not duplicates of each other', () => {
    expect(invalid(() => validatePush({ changes: [{ recordId: 1, baseVersion: 0, ciphertext: bytes(1) }, { recordId: 2, baseVersion: 0, ciphertext: bytes(1) }] }, limits))).toStrictEqual([
      { path: 'changes.0.recordId', rule: 'recordId must be a string, not number' },
      { path: 'changes.1.recordId', rule: 'recordId must be a string, not number' },
    ]);
  });

  test('record ids are measured in characters, not UTF-16 units: 5 emoji fit a limit of 5', () => {
    const recordId = '\u{1F600}'.repeat(5);
    expect(validatePush({ changes: [{ recordId, baseVersion: 0, ciphertext: bytes(1) }] }, limits).changes[0]?.recordId).toBe(recordId);
    expect(invalid(() => validatePush({ changes: [{ recordId: recordId + 'x', baseVersion: 0, ciphertext: bytes(1) }] }, limits))).toStrictEqual([
      { path: 'changes.0.recordId', rule: 'recordId must be 1 to 5 characters' },
    ]);
  });

  test('a duplicate record id is named at each repeat', () => {
    const c = { baseVersion: 0, ciphertext: bytes(1) };
    expect(invalid(() => validatePush({ changes: [{ recordId: 'a', ...c }, { recordId: 'b', ...c }, { recordId: 'a', ...c }, { recordId: 'a', ...c }] }, { ...limits, maxChanges: 10 }))).toStrictEqual([
      { path: 'changes.2.recordId', rule: 'appears more than once in this push', recordId: 'a' },
      { path: 'changes.3.recordId', rule: 'appears more than once in this push', recordId: 'a' },
    ]);
  });

  test.each([
    [-1, 'not -1'],
    [MAX_INT4 + 1, `not ${MAX_INT4 + 1}`],
    [0.5, 'not 0.5'],
    ['1', 'not string'],
    [null, 'not null'],
  ])('baseVersion %s is refused, naming the record', (baseVersion, shown) => {
    expect(invalid(() => validatePush({ changes: [{ recordId: 'r', baseVersion, ciphertext: bytes(1) }] }, limits))).toStrictEqual([
      { path: 'changes.0.baseVersion', rule: `must be an integer from 0 to ${MAX_INT4}, ${shown}`, recordId: 'r' },
    ]);
  });

  test('baseVersion at both ends of its range is accepted', () => {
    const valid = validatePush({ changes: [{ recordId: 'a', baseVersion: 0, ciphertext: bytes(1) }, { recordId: 'b', baseVersion: MAX_INT4, ciphertext: bytes(1) }] }, limits);
    expect(valid.changes.map((c) => c.baseVersion)).toStrictEqual([0, MAX_INT4]);
  });

  test('ciphertext rules, each naming the record', () => {
    expect(
      invalid(() =>
        validatePush(
          {
            changes: [
              { recordId: 'a', baseVersion: 0, ciphertext: 'text' },
              { recordId: 'b', baseVersion: 0, ciphertext: bytes(0) },
              { recordId: 'c', baseVersion: 1, deleted: true, ciphertext: bytes(1) },
            ],
          },
          limits,
        ),
      ),
    ).toStrictEqual([
      { path: 'changes.0.ciphertext', rule: 'ciphertext must be a Uint8Array, not string', recordId: 'a' },
      { path: 'changes.1.ciphertext', rule: 'ciphertext must not be empty (send deleted: true to delete)', recordId: 'b' },
      { path: 'changes.2.ciphertext', rule: 'a delete carries no ciphertext', recordId: 'c' },
    ]);
  });

  test.each([['yes'], [1], [null], [0]])('deleted: %o is refused', (deleted) => {
    expect(invalid(() => validatePush({ changes: [{ recordId: 'a', baseVersion: 1, deleted, ciphertext: bytes(1) }] }, limits))).toStrictEqual([
      { path: 'changes.0.deleted', rule: 'must be true, false or absent', recordId: 'a' },
    ]);
  });

  test('an explicit deleted: false still needs a ciphertext', () => {
    expect(invalid(() => validatePush({ changes: [{ recordId: 'a', baseVersion: 1, deleted: false }] }, limits))).toStrictEqual([
      { path: 'changes.0.ciphertext', rule: 'ciphertext must be a Uint8Array, not undefined', recordId: 'a' },
    ]);
  });

  test('a ciphertext over maxRecordBytes is a limit; exactly maxRecordBytes passes', () => {
    expect(overLimit(() => validatePush({ changes: [{ recordId: 'a', baseVersion: 0, ciphertext: bytes(9) }] }, limits))).toStrictEqual([
      { path: 'changes.0.ciphertext', rule: 'ciphertext is 9 bytes; the limit is 8', recordId: 'a' },
    ]);
    expect(validatePush({ changes: [{ recordId: 'a', baseVersion: 0, ciphertext: bytes(8) }] }, limits).changes).toHaveLength(1);
  });

  test('a push over maxPushBytes in total is a limit; exactly maxPushBytes passes', () => {
    const push = (sizes: number[]) => ({ changes: sizes.map((n, i) => ({ recordId: `r${i}`, baseVersion: 0, ciphertext: bytes(n) })) });
    expect(overLimit(() => validatePush(push([8, 5]), limits))).toStrictEqual([{ path: 'changes', rule: 'a push carries at most 12 bytes of ciphertext, not 13; split it' }]);
    expect(validatePush(push([8, 4]), limits).changes).toHaveLength(2);
  });

  test('a shape error wins over a size limit, and both limits are reported together', () => {
    expect(invalid(() => validatePush({ changes: [{ recordId: 'a', baseVersion: 0, ciphertext: bytes(9) }, { recordId: 'b', baseVersion: -1, ciphertext: bytes(1) }] }, limits))).toStrictEqual([
      { path: 'changes.1.baseVersion', rule: `must be an integer from 0 to ${MAX_INT4}, not -1`, recordId: 'b' },
    ]);
    expect(overLimit(() => validatePush({ changes: [{ recordId: 'a', baseVersion: 0, ciphertext: bytes(9) }, { recordId: 'b', baseVersion: 0, ciphertext: bytes(8) }, { recordId: 'c', baseVersion: 0, ciphertext: bytes(8) }] }, limits))).toStrictEqual([
      { path: 'changes.0.ciphertext', rule: 'ciphertext is 9 bytes; the limit is 8', recordId: 'a' },
      { path: 'changes', rule: 'a push carries at most 12 bytes of ciphertext, not 16; split it' },
    ]);
  });
});

describe('validatePull', () => {
  test.each([[undefined], [null], [{}]])('%o gives the default page', (input) => {
    expect(validatePull(input, limits)).toStrictEqual({ cursor: null, limit: 20, maxBytes: 1000 });
  });

  test('given values are returned, up to and including the maxima', () => {
    expect(validatePull({ cursor: 'c', limit: 50, maxBytes: 5000 }, limits)).toStrictEqual({ cursor: 'c', limit: 50, maxBytes: 5000 });
    expect(validatePull({ limit: 1, maxBytes: 1 }, limits)).toStrictEqual({ cursor: null, limit: 1, maxBytes: 1 });
  });

  test('a non-object is refused as a whole', () => {
    expect(invalid(() => validatePull('x', limits))).toStrictEqual([{ path: '(input)', rule: 'must be an object, not string' }]);
  });

  test('every bad field is reported at once', () => {
    expect(invalid(() => validatePull({ cursor: 1, limit: 0, maxBytes: '5' }, limits))).toStrictEqual([
      { path: 'cursor', rule: 'must be a string or null, not number' },
      { path: 'limit', rule: 'must be a positive integer, not 0' },
      { path: 'maxBytes', rule: 'must be a positive integer, not string' },
    ]);
    expect(invalid(() => validatePull({ limit: 1.5, maxBytes: -3 }, limits))).toStrictEqual([
      { path: 'limit', rule: 'must be a positive integer, not 1.5' },
      { path: 'maxBytes', rule: 'must be a positive integer, not -3' },
    ]);
  });

  test('over a maximum is a limit, naming each', () => {
    expect(overLimit(() => validatePull({ limit: 51, maxBytes: 5001 }, limits))).toStrictEqual([
      { path: 'limit', rule: 'must be at most 50, not 51' },
      { path: 'maxBytes', rule: 'must be at most 5000, not 5001' },
    ]);
  });

  test('a shape error wins over a limit', () => {
    expect(invalid(() => validatePull({ limit: 51, maxBytes: 0 }, limits))).toStrictEqual([{ path: 'maxBytes', rule: 'must be a positive integer, not 0' }]);
  });
});

describe('validateEnable', () => {
  test.each([
    [null, 'null'],
    [undefined, 'undefined'],
    [7, 'number'],
  ])('%o is a ValidationError, not a TypeError', (input, type) => {
    expect(invalid(() => validateEnable(input))).toStrictEqual([{ path: '(input)', rule: `must be an object, not ${type}` }]);
  });

  test('the envelope is returned, with no fingerprint as null', () => {
    expect(validateEnable(envelope())).toStrictEqual({ ...envelope(), deviceFingerprint: null });
    expect(validateEnable({ ...envelope(), deviceFingerprint: null })).toStrictEqual({ ...envelope(), deviceFingerprint: null });
  });

  test('a fingerprint of 255 characters is kept; 256 are refused', () => {
    expect(validateEnable({ ...envelope(), deviceFingerprint: 'f'.repeat(255) }).deviceFingerprint).toBe('f'.repeat(255));
    expect(validateEnable({ ...envelope(), deviceFingerprint: '' }).deviceFingerprint).toBe('');
    expect(invalid(() => validateEnable({ ...envelope(), deviceFingerprint: 'f'.repeat(256) }))).toStrictEqual([{ path: 'deviceFingerprint', rule: 'must be at most 255 characters' }]);
  });

  test.each([
    [42, 'must be a string'],
    ['a\u0000', 'must not contain NUL characters'],
    ['\uDC00', 'must be well-formed Unicode (no lone surrogates)'],
  ])('fingerprint %o is refused', (deviceFingerprint, rule) => {
    expect(invalid(() => validateEnable({ ...envelope(), deviceFingerprint }))).toStrictEqual([{ path: 'deviceFingerprint', rule }]);
  });

  test('a bad envelope is refused with its own paths', () => {
    const violations = invalid(() => validateEnable({ ...envelope(), salt: new Uint8Array(3) }));
    expect(violations.map((v) => v.path)).toContain('salt');
  });
});

describe('validateRewrap and validateBeginRotation', () => {
  test.each([
    [null, 'null'],
    ['x', 'string'],
  ])('%o is a ValidationError, not a TypeError', (input, type) => {
    const expected = [{ path: '(input)', rule: `must be an object, not ${type}` }];
    expect(invalid(() => validateRewrap(input))).toStrictEqual(expected);
    expect(invalid(() => validateBeginRotation(input))).toStrictEqual(expected);
  });

  test('the envelope and expectedVersion are returned', () => {
    expect(validateRewrap({ ...envelope(), expectedVersion: 3 })).toStrictEqual({ ...envelope(), expectedVersion: 3 });
    expect(validateBeginRotation({ expectedVersion: 0 })).toStrictEqual({ expectedVersion: 0 });
  });

  test.each([[-1, 'not -1'], [undefined, 'not undefined'], [MAX_INT4 + 1, `not ${MAX_INT4 + 1}`]])('expectedVersion %s is refused', (expectedVersion, shown) => {
    const expected = [{ path: 'expectedVersion', rule: `must be an integer from 0 to ${MAX_INT4}, ${shown}` }];
    expect(invalid(() => validateRewrap({ ...envelope(), expectedVersion }))).toStrictEqual(expected);
    expect(invalid(() => validateBeginRotation({ expectedVersion }))).toStrictEqual(expected);
  });
});

describe('validateRotate', () => {
  const rotate = (records: unknown) => ({ ...envelope(), expectedVersion: 1, records });

  test('null is a ValidationError, not a TypeError', () => {
    expect(invalid(() => validateRotate(null, limits))).toStrictEqual([{ path: '(input)', rule: 'must be an object, not null' }]);
  });

  test('records are returned, bytes copied', () => {
    expect(validateRotate(rotate([{ recordId: 'a', baseVersion: 2, ciphertext: bytes(4) }]), limits)).toStrictEqual({
      ...envelope(),
      expectedVersion: 1,
      records: [{ recordId: 'a', baseVersion: 2, ciphertext: Buffer.from(bytes(4)) }],
    });
    expect(validateRotate(rotate([]), limits).records).toStrictEqual([]);
  });

  test('records that are not an array', () => {
    expect(invalid(() => validateRotate(rotate(undefined), limits))).toStrictEqual([{ path: 'records', rule: 'must be an array, not undefined' }]);
  });

  test('more records than maxRotationRecords is a limit; exactly maxRotationRecords passes', () => {
    const records = (n: number) => Array.from({ length: n }, (_, i) => ({ recordId: `r${i}`, baseVersion: 1, ciphertext: bytes(1) }));
    expect(overLimit(() => validateRotate(rotate(records(3)), limits))).toStrictEqual([
      { path: 'records', rule: 'a rotateKey call carries at most 2 records, not 3; stage a larger rotation in chunks' },
    ]);
    expect(validateRotate(rotate(records(2)), limits).records).toHaveLength(2);
  });

  test('each record is checked, naming it; a record needs a ciphertext', () => {
    expect(
      invalid(() =>
        validateRotate(
          rotate([
            { recordId: 'a', baseVersion: 1 },
            { recordId: 'a', baseVersion: -1, ciphertext: bytes(1) },
          ]),
          limits,
        ),
      ),
    ).toStrictEqual([
      { path: 'records.0.ciphertext', rule: 'ciphertext must be a Uint8Array, not undefined', recordId: 'a' },
      { path: 'records.1.recordId', rule: 'appears more than once in this call', recordId: 'a' },
      { path: 'records.1.baseVersion', rule: `must be an integer from 0 to ${MAX_INT4}, not -1`, recordId: 'a' },
    ]);
  });

  test('over maxRotationBytes in total is a limit; exactly maxRotationBytes passes', () => {
    const records = (sizes: number[]) => sizes.map((n, i) => ({ recordId: `r${i}`, baseVersion: 1, ciphertext: bytes(n) }));
    expect(overLimit(() => validateRotate(rotate(records([8, 5])), limits))).toStrictEqual([
      { path: 'records', rule: 'a rotateKey call carries at most 12 bytes of ciphertext, not 13; split it' },
    ]);
    expect(validateRotate(rotate(records([8, 4])), limits).records).toHaveLength(2);
  });

  test('the envelope is checked before the records', () => {
    expect(invalid(() => validateRotate({ ...rotate(undefined), expectedVersion: 'x' }, limits))).toStrictEqual([
      { path: 'expectedVersion', rule: `must be an integer from 0 to ${MAX_INT4}, not string` },
    ]);
  });
});

describe('validateStage', () => {
  const stage = (fields: Record<string, unknown>) => ({ rotationId: ROTATION_ID, records: [], ...fields });

  test('null is a ValidationError', () => {
    expect(invalid(() => validateStage(null, limits))).toStrictEqual([{ path: '(input)', rule: 'must be an object, not null' }]);
  });

  test.each([
    [ROTATION_ID.toUpperCase(), 'that string'],
    ['not-a-uuid', 'that string'],
    [5, 'number'],
    [undefined, 'undefined'],
  ])('rotationId %o is refused, without echoing it', (rotationId, shown) => {
    expect(invalid(() => validateStage(stage({ rotationId }), limits))).toStrictEqual([
      { path: 'rotationId', rule: `must be the rotationId beginKeyRotation returned (a lower-case UUID), not ${shown}` },
    ]);
  });

  test('records and removals are returned; remove defaults to none and repeats collapse', () => {
    expect(validateStage(stage({ records: [{ recordId: 'a', baseVersion: 1, ciphertext: bytes(2) }] }), limits)).toStrictEqual({
      rotationId: ROTATION_ID,
      records: [{ recordId: 'a', baseVersion: 1, ciphertext: Buffer.from(bytes(2)) }],
      remove: [],
    });
    expect(validateStage(stage({ remove: ['x', 'x'] }), limits).remove).toStrictEqual(['x']);
  });

  test('remove that is not an array', () => {
    expect(invalid(() => validateStage(stage({ remove: 'x' }), limits))).toStrictEqual([{ path: 'remove', rule: 'must be an array of record ids, not string' }]);
  });

  test('more removals than maxRotationRecords is a limit; exactly that many pass', () => {
    expect(overLimit(() => validateStage(stage({ remove: ['a', 'b', 'c'] }), limits))).toStrictEqual([
      { path: 'remove', rule: 'a stageKeyRotation call removes at most 2 records, not 3' },
    ]);
    expect(validateStage(stage({ remove: ['a', 'b'] }), limits).remove).toStrictEqual(['a', 'b']);
  });

  test('more records than maxRotationRecords is a limit named for this call', () => {
    const records = Array.from({ length: 3 }, (_, i) => ({ recordId: `r${i}`, baseVersion: 1, ciphertext: bytes(1) }));
    expect(overLimit(() => validateStage(stage({ records }), limits))).toStrictEqual([
      { path: 'records', rule: 'a stageKeyRotation call carries at most 2 records, not 3; stage a larger rotation in chunks' },
    ]);
  });

  test('a removal that is malformed, or also staged, is named', () => {
    expect(invalid(() => validateStage(stage({ records: [{ recordId: 'a', baseVersion: 1, ciphertext: bytes(1) }], remove: ['a', 7] }), limits))).toStrictEqual([
      { path: 'remove.0', rule: 'is also staged in this call', recordId: 'a' },
      { path: 'remove.1', rule: 'recordId must be a string, not number' },
    ]);
  });

  test('the hole of a sparse remove list is named, not skipped', () => {
    // eslint-disable-next-line no-sparse-arrays
    const remove = [, 'a'];
    expect(invalid(() => validateStage(stage({ remove }), limits))).toStrictEqual([{ path: 'remove.0', rule: 'recordId must be a string, not undefined' }]);
  });
});

describe('validateCommit and validateAbort', () => {
  test('null is a ValidationError', () => {
    expect(invalid(() => validateCommit(null))).toStrictEqual([{ path: '(input)', rule: 'must be an object, not null' }]);
    expect(invalid(() => validateAbort(null))).toStrictEqual([{ path: '(input)', rule: 'must be an object, not null' }]);
  });

  test('the rotation id and envelope are returned', () => {
    expect(validateCommit({ ...envelope(), expectedVersion: 2, rotationId: ROTATION_ID })).toStrictEqual({ ...envelope(), expectedVersion: 2, rotationId: ROTATION_ID });
    expect(validateAbort({ rotationId: ROTATION_ID })).toStrictEqual({ rotationId: ROTATION_ID });
  });

  test('a bad rotation id is refused first', () => {
    const rule = 'must be the rotationId beginKeyRotation returned (a lower-case UUID), not that string';
    expect(invalid(() => validateCommit({ rotationId: `${ROTATION_ID}x` }))).toStrictEqual([{ path: 'rotationId', rule }]);
    expect(invalid(() => validateAbort({ rotationId: ` ${ROTATION_ID}` }))).toStrictEqual([{ path: 'rotationId', rule }]);
  });
});

describe('validatePurge', () => {
  test('a date is returned, with no user as null', () => {
    const olderThan = new Date('2026-01-01T00:00:00Z');
    expect(validatePurge({ olderThan })).toStrictEqual({ olderThan, userId: null });
    expect(validatePurge({ olderThan, userId: null })).toStrictEqual({ olderThan, userId: null });
    expect(validatePurge({ olderThan, userId: 'u1' })).toStrictEqual({ olderThan, userId: 'u1' });
  });

  test('the first and last dates PostgreSQL and the rule allow are accepted', () => {
    for (const iso of ['0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']) expect(validatePurge({ olderThan: new Date(iso) }).olderThan.toISOString()).toBe(iso);
  });

  test.each([
    ['a string', '2026-01-01', 'must be a Date'],
    ['year 0', new Date('0000-12-31T23:59:59.999Z'), 'must be a date from year 1 to 9999'],
    ['year 10000', new Date('+010000-01-01T00:00:00.000Z'), 'must be a date from year 1 to 9999'],
  ])('olderThan as %s is refused', (_label, olderThan, rule) => {
    expect(invalid(() => validatePurge({ olderThan }))).toStrictEqual([{ path: 'olderThan', rule }]);
  });

  test('a bad user id is refused', () => {
    expect(invalid(() => validatePurge({ olderThan: new Date(), userId: '' }))).toStrictEqual([{ path: 'userId', rule: 'must be 1 to 255 characters' }]);
  });
});
