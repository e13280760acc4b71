/**
 * The per-vault share of the pool (src/sync/vault-gate.ts) as pure logic: at most `maxPerVault`
 * calls of one vault run at once, one more is refused at once with a retry hint and never starts,
 * other vaults are unaffected, and a slot is given back however the call ends. The effect on a
 * real pool is shown in test/sync/fair-share.test.ts.
 */
import { describe, expect, test } from 'vitest';
import { TransientError, VaultDbError } from '../../src/errors.js';
import { GATE_RETRY_AFTER_MS, VaultGate } from '../../src/sync/vault-gate.js';

/** A call that runs until `finish` is called. */
function pending(): { promise: Promise<string>; finish: () => void; fail: () => void } {
  let finish!: () => void;
  let fail!: () => void;
  const promise = new Promise<string>((resolve, reject) => {
    finish = () => resolve('done');
    fail = () => reject(new Error('work failed'));
  });
  return { promise, finish, fail };
}

describe('VaultGate', () => {
  test('admits up to maxPerVault calls of one vault; the next is refused at once and its work never starts', async () => {
    const gate = new VaultGate({}, 2);
    const calls = [pending(), pending()];
    const running = calls.map((c) => gate.run('alice', () => c.promise));
    expect(gate.inFlightFor('alice')).toBe(2);

    let started = false;
    const refused = await gate.run('alice', async () => { started = true; return 'x'; }).catch((e: unknown) => e);
    expect(started).toBe(false);
    expect(refused).toBeInstanceOf(TransientError);
    expect(refused).toBeInstanceOf(VaultDbError);
    expect(refused).toMatchObject({ code: 'transient', retryable: true, retryAfterMs: GATE_RETRY_AFTER_MS });
    expect((refused as Error).message).toContain('"alice"');
    expect((refused as Error).message).toContain('the limit is 2');
    expect((refused as Error).cause).toMatchObject({ name: 'VaultGateRefusal' });

    calls.forEach((c) => c.finish());
    await expect(Promise.all(running)).resolves.toEqual(['done', 'done']);
    expect(gate.inFlightFor('alice')).toBe(0);
  });

  test("another vault's calls are not affected by a full one", async () => {
    const gate = new VaultGate({}, 1);
    const alice = pending();
    const running = gate.run('alice', () => alice.promise);
    await expect(gate.run('bob', async () => 'bob ran')).resolves.toBe('bob ran');
    alice.finish();
    await running;
  });

  test('a slot is given back when the work fails, so a vault never stays locked out', async () => {
    const gate = new VaultGate({}, 1);
    const call = pending();
    const running = gate.run('alice', () => call.promise);
    call.fail();
    await expect(running).rejects.toThrow('work failed');
    expect(gate.inFlightFor('alice')).toBe(0);
    await expect(gate.run('alice', async () => 'again')).resolves.toBe('again');
  });

  test('gates on the same pool share their counts; gates on another pool do not', async () => {
    const pool = {};
    const first = new VaultGate(pool, 1);
    const second = new VaultGate(pool, 1);
    const elsewhere = new VaultGate({}, 1);
    const call = pending();
    const running = first.run('alice', () => call.promise);
    await expect(second.run('alice', async () => 'x')).rejects.toBeInstanceOf(TransientError);
    await expect(elsewhere.run('alice', async () => 'other pool')).resolves.toBe('other pool');
    call.finish();
    await running;
  });
});
