/**
 * The per-vault quota (src/sync/quota.ts) without a database: growth past either limit is refused
 * naming the first record that crossed it, and a call that leaves the vault no larger passes even
 * when the vault is already over. test/sync/quota.test.ts checks it through the service.
 */
import { describe, expect, test } from 'vitest';
import { LimitExceededError } from '../../src/errors.js';
import { VaultUsage } from '../../src/sync/quota.js';

const limits = { maxVaultRecords: 3, maxVaultBytes: 100 };

function refusal(usage: VaultUsage): LimitExceededError {
  try {
    usage.check();
  } catch (error) {
    expect(error).toBeInstanceOf(LimitExceededError);
    return error as LimitExceededError;
  }
  throw new Error('expected a LimitExceededError');
}

describe('VaultUsage', () => {
  test('up to both limits passes', () => {
    const usage = new VaultUsage({ recordCount: 1, storedBytes: 40 }, limits);
    usage.add('changes.0', 'a', null, 30);
    usage.add('changes.1', 'b', null, 30);
    expect(() => usage.check()).not.toThrow();
  });

  test('one record too many names the record that crossed the limit', () => {
    const usage = new VaultUsage({ recordCount: 2, storedBytes: 0 }, limits);
    usage.add('changes.0', 'a', null, 1);
    usage.add('changes.1', 'b', null, 1);
    usage.add('changes.2', 'c', null, 1);
    expect(refusal(usage).violations).toEqual([{ path: 'changes.1', recordId: 'b', rule: 'the vault would hold 5 live records; maxVaultRecords is 3' }]);
  });

  test('one byte too many names the record that crossed the limit', () => {
    const usage = new VaultUsage({ recordCount: 0, storedBytes: 90 }, limits);
    usage.add('changes.0', 'a', null, 10);
    usage.add('changes.1', 'b', 5, 6);
    usage.add('changes.2', 'c', 1, 2);
    expect(refusal(usage).violations).toEqual([{ path: 'changes.1', recordId: 'b', rule: 'the vault would hold 102 bytes of live ciphertext; maxVaultBytes is 100' }]);
  });

  test('both limits are reported together', () => {
    const usage = new VaultUsage({ recordCount: 3, storedBytes: 100 }, limits);
    usage.add('records.0', 'x', null, 1);
    expect(refusal(usage).violations).toEqual([
      { path: 'records.0', recordId: 'x', rule: 'the vault would hold 4 live records; maxVaultRecords is 3' },
      { path: 'records.0', recordId: 'x', rule: 'the vault would hold 101 bytes of live ciphertext; maxVaultBytes is 100' },
    ]);
  });

  test('a vault already over its limits may shrink, and may stay as large as it was', () => {
    const usage = new VaultUsage({ recordCount: 5, storedBytes: 500 }, limits);
    usage.add('changes.0', 'a', 10, null);
    usage.add('changes.1', 'b', 10, 10);
    expect(() => usage.check()).not.toThrow();
    const same = new VaultUsage({ recordCount: 5, storedBytes: 500 }, limits);
    same.add('changes.0', 'a', 10, null);
    same.add('changes.1', 'c', null, 10);
    expect(() => same.check()).not.toThrow();
  });

  test('a vault over its limits may not grow, and the error names the growth, not an earlier shrink', () => {
    const usage = new VaultUsage({ recordCount: 5, storedBytes: 500 }, limits);
    usage.add('changes.0', 'a', 10, 11);
    expect(refusal(usage).violations).toEqual([{ path: 'changes.0', recordId: 'a', rule: 'the vault would hold 501 bytes of live ciphertext; maxVaultBytes is 100' }]);
    const more = new VaultUsage({ recordCount: 5, storedBytes: 0 }, limits);
    more.add('changes.0', 'a', null, null);
    more.add('changes.1', 'b', null, 0);
    expect(refusal(more).violations).toEqual([{ path: 'changes.1', recordId: 'b', rule: 'the vault would hold 6 live records; maxVaultRecords is 3' }]);
  });

  test('growth after a shrink that ends over the start is named at the write that grew it', () => {
    const usage = new VaultUsage({ recordCount: 3, storedBytes: 0 }, limits);
    usage.add('changes.0', 'a', 0, null);
    usage.add('changes.1', 'b', null, 0);
    usage.add('changes.2', 'c', null, 0);
    expect(refusal(usage).violations).toEqual([{ path: 'changes.2', recordId: 'c', rule: 'the vault would hold 4 live records; maxVaultRecords is 3' }]);
  });

  test('a vault over its limit that shrinks and then grows names the first write that took it past the limit', () => {
    const usage = new VaultUsage({ recordCount: 4, storedBytes: 0 }, { maxVaultRecords: 3, maxVaultBytes: 100 });
    usage.add('changes.0', 'a', 0, null);
    usage.add('changes.1', 'b', null, 0);
    usage.add('changes.2', 'c', null, 0);
    expect(refusal(usage).violations).toEqual([{ path: 'changes.1', recordId: 'b', rule: 'the vault would hold 5 live records; maxVaultRecords is 3' }]);
  });

  test('over the byte limit, a write that shrinks or keeps the bytes is not the one named: the later growth is', () => {
    for (const first of [5, 10]) {
      const usage = new VaultUsage({ recordCount: 1, storedBytes: 500 }, limits);
      usage.add('changes.0', 'a', 10, first);
      usage.add('changes.1', 'b', null, 20);
      const violations = refusal(usage).violations;
      expect(violations.find((v) => v.rule.includes('maxVaultBytes'))).toMatchObject({ path: 'changes.1', recordId: 'b' });
    }
  });
});
