/**
 * The wording of a refused SyncService option (src/sync/options.ts), found by mutation testing:
 * how a bad value is described, and how several problems and the known names are listed. The
 * rules themselves are in test/unit/sync-options.test.ts.
 */
import { expect, test } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import { resolveSyncOptions } from '../../src/sync/options.js';
import type { SyncServiceOptions } from '../../src/sync/types.js';

/** The message of the ConfigurationError `options` must cause. */
function messageOf(options: unknown): string {
  try {
    resolveSyncOptions(options as SyncServiceOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigurationError');
}

test('a long string value is shown cut to 20 characters', () => {
  const message = messageOf({ limits: { maxChanges: 'x'.repeat(30) } });
  expect(message).toContain(`not the string "${'x'.repeat(20)}"`);
  expect(message).not.toContain('x'.repeat(21));
});

test('an array and an object are named by kind', () => {
  expect(messageOf({ limits: { maxChanges: [1] } })).toContain('maxChanges: must be an integer from 1 to 9007199254740991, not an array');
  expect(messageOf({ limits: { maxChanges: {} } })).toContain('maxChanges: must be an integer from 1 to 9007199254740991, not object');
});

test('an unknown limit lists the known ones, comma-separated', () => {
  expect(messageOf({ limits: { maxFoo: 1 } })).toContain('unknown limit (known: maxChanges, maxRecordBytes, ');
});

test('several problems are listed in one message, separated by semicolons', () => {
  const message = messageOf({ lockTimeoutMs: 0, maxConcurrentCallsPerVault: 0 });
  expect(message).toMatch(/^Invalid SyncService options: lockTimeoutMs: /);
  expect(message).toContain(', not 0; maxConcurrentCallsPerVault: must be an integer from 1 to 9007199254740991, not 0.');
});
