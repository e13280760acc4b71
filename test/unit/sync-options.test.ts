/**
 * `new SyncService(em, options)` validates its options before anything else (src/sync/options.ts):
 * every bad value, including the edge values that used to remove a limit silently or reach
 * PostgreSQL's lock_timeout (0, NaN, Infinity, 3e9), is one ConfigurationError naming the option.
 * Pure logic, so no database; test/sync/service-options.test.ts checks the constructor's wiring.
 */
import { describe, expect, test } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import { DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_MAX_CONCURRENT_CALLS_PER_VAULT, MAX_LOCK_TIMEOUT_MS, resolveSyncOptions } from '../../src/sync/options.js';
import { DEFAULT_LIMITS, type SyncLimits, type SyncServiceOptions } from '../../src/sync/types.js';

/** The ConfigurationError that `options` must cause. */
function refusal(options: unknown): ConfigurationError {
  try {
    resolveSyncOptions(options as SyncServiceOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    const e = error as ConfigurationError;
    expect(e.code).toBe('configuration');
    expect(e.retryable).toBe(false);
    expect(e.message).not.toContain('\n');
    return e;
  }
  throw new Error(`expected a ConfigurationError for ${String(options)}`);
}

describe('defaults', () => {
  test.each([undefined, {}, { limits: {} }, { lockTimeoutMs: undefined, maxConcurrentCallsPerVault: undefined }])('%o gives every default', (options) => {
    expect(resolveSyncOptions(options as SyncServiceOptions)).toEqual({
      limits: DEFAULT_LIMITS,
      lockTimeoutMs: DEFAULT_LOCK_TIMEOUT_MS,
      maxConcurrentCallsPerVault: DEFAULT_MAX_CONCURRENT_CALLS_PER_VAULT,
    });
  });

  test('given values are merged over the defaults, and the limits come back frozen', () => {
    const resolved = resolveSyncOptions({ limits: { maxChanges: 7 }, lockTimeoutMs: 1, maxConcurrentCallsPerVault: 5 });
    expect(resolved).toEqual({ limits: { ...DEFAULT_LIMITS, maxChanges: 7 }, lockTimeoutMs: 1, maxConcurrentCallsPerVault: 5 });
    expect(Object.isFrozen(resolved.limits)).toBe(true);
  });
});

describe('lockTimeoutMs', () => {
  test.each([1, 5000, MAX_LOCK_TIMEOUT_MS])('%d ms is accepted as is', (lockTimeoutMs) => {
    expect(resolveSyncOptions({ lockTimeoutMs }).lockTimeoutMs).toBe(lockTimeoutMs);
  });

  test.each([
    ['0 (PostgreSQL: no limit at all)', 0, 'not 0'],
    ['NaN', Number.NaN, 'not NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 'not Infinity'],
    ['-Infinity', Number.NEGATIVE_INFINITY, 'not -Infinity'],
    ['negative', -5, 'not -5'],
    ['fractional', 1.5, 'not 1.5'],
    ['3e9, over the int of lock_timeout', 3e9, 'not 3000000000'],
    ['one over the maximum', MAX_LOCK_TIMEOUT_MS + 1, 'not 2147483648'],
    ['a string', '5000', 'not the string "5000"'],
    ['null', null, 'not null'],
  ])('%s is refused, naming the option and the value', (_label, lockTimeoutMs, shown) => {
    const error = refusal({ lockTimeoutMs });
    expect(error.message).toContain('lockTimeoutMs: must be an integer from 1 to 2147483647 ms');
    expect(error.message).toContain(shown);
  });
});

describe('limits, checked for every key of DEFAULT_LIMITS (so limits added later are covered too)', () => {
  const keys = Object.keys(DEFAULT_LIMITS) as (keyof SyncLimits)[];
  const bad: [string, unknown][] = [
    ['undefined', undefined],
    ['NaN', Number.NaN],
    ['0', 0],
    ['negative', -1],
    ['fractional', 2.5],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['beyond a safe integer', 2 ** 53],
    ['a string', '10'],
    ['null', null],
  ];
  describe.each(keys)('%s', (key) => {
    test.each(bad)('%s is refused, naming the limit', (_label, value) => {
      const error = refusal({ limits: { [key]: value } });
      expect(error.message).toContain(`limits.${key}: must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}`);
    });

    test('1 and the largest safe integer are accepted (where the pull pairs allow)', () => {
      expect(resolveSyncOptions({ limits: { defaultPullLimit: 1, defaultPullBytes: 1, [key]: 1 } }).limits[key]).toBe(1);
      const big = resolveSyncOptions({ limits: { maxPullLimit: Number.MAX_SAFE_INTEGER, maxPullBytes: Number.MAX_SAFE_INTEGER, [key]: Number.MAX_SAFE_INTEGER } });
      expect(big.limits[key]).toBe(Number.MAX_SAFE_INTEGER);
    });
  });

  test("the issue's example, which used to remove both limits, is one error naming both", () => {
    const error = refusal({ limits: { maxChanges: undefined, maxRecordBytes: Number.NaN } });
    expect(error.message).toContain('limits.maxChanges: must be an integer from 1 to 9007199254740991, not undefined');
    expect(error.message).toContain('limits.maxRecordBytes: must be an integer from 1 to 9007199254740991, not NaN');
  });

  test('an unknown limit is refused by name, with the known ones listed', () => {
    const error = refusal({ limits: { maxChange: 5 } });
    expect(error.message).toContain('limits.maxChange: unknown limit');
    expect(error.message).toContain('maxChanges');
  });

  test.each([null, [], 'x', 5])('limits that are not an object (%o) are refused', (limits) => {
    expect(refusal({ limits }).message).toContain('limits:');
  });

  test.each([
    ['defaultPullLimit', 'maxPullLimit'],
    ['defaultPullBytes', 'maxPullBytes'],
  ] as const)('%s above %s is refused: every pull without its own value would fail', (dflt, max) => {
    const error = refusal({ limits: { [max]: 10 } });
    expect(error.message).toContain(`limits.${dflt}: must not exceed limits.${max} (10), not ${DEFAULT_LIMITS[dflt]}`);
    expect(resolveSyncOptions({ limits: { [max]: 10, [dflt]: 10 } }).limits[dflt]).toBe(10);
  });
});

describe('maxConcurrentCallsPerVault', () => {
  test.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '2', null])('%o is refused', (maxConcurrentCallsPerVault) => {
    expect(refusal({ maxConcurrentCallsPerVault }).message).toContain('maxConcurrentCallsPerVault: must be an integer from 1');
  });
});

describe('the options object itself', () => {
  test('an unknown option is refused by name, with the known ones listed', () => {
    const error = refusal({ lockTimout: 5000 });
    expect(error.message).toBe('Invalid SyncService options: lockTimout: unknown option (known: limits, lockTimeoutMs, maxConcurrentCallsPerVault, claimKey).');
  });

  test.each([null, [], 'options', 42])('%o instead of an object is refused', (options) => {
    expect(refusal(options).message).toContain('options: Expected object');
  });

  test('several bad options make one error that names each of them', () => {
    const error = refusal({ lockTimeoutMs: 0, maxConcurrentCallsPerVault: 0, limits: { maxChanges: -1 }, extra: true });
    for (const name of ['lockTimeoutMs', 'maxConcurrentCallsPerVault', 'limits.maxChanges', 'extra']) expect(error.message).toContain(`${name}:`);
  });
});
