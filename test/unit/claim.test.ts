/**
 * The claim key's accepted forms and the verdict on a refused claim (src/sync/claim.ts), without a
 * database: the key comes from an option or `VAULT_DB_CLAIM_KEY` and must be refused in one line
 * that never echoes it; a refusal is blamed on the clocks only when they are far enough apart.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import { CLAIM_LIFETIME_SECONDS, ClaimRefusal, claimRejection, parseClaimKey } from '../../src/sync/claim.js';

const HEX = '0123456789abcdef'.repeat(4);
const BYTES = Buffer.from(HEX, 'hex');

/** The ConfigurationError message parseClaimKey must throw for `value`. */
function refusal(value: unknown): string {
  let caught: unknown;
  try {
    parseClaimKey(value, 'VAULT_DB_CLAIM_KEY');
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigurationError);
  return (caught as Error).message;
}

describe('parseClaimKey', () => {
  test.each([
    ['64 hex digits', HEX],
    ['upper-case hex digits', HEX.toUpperCase()],
    ["psql's \\x form of a bytea", `\\x${HEX}`],
    ['hex digits with surrounding white space', `  ${HEX}\n`],
  ])('%s', (_label, value) => {
    expect(parseClaimKey(value, 'VAULT_DB_CLAIM_KEY').equals(BYTES)).toBe(true);
  });

  test('32 bytes, copied so the caller may reuse its buffer', () => {
    const given = Buffer.from(BYTES);
    const key = parseClaimKey(given, 'options.claimKey');
    given.fill(0);
    expect(key.equals(BYTES)).toBe(true);
  });

  test.each([
    ['63 digits', HEX.slice(1)],
    ['65 digits', `${HEX}0`],
    ['a digit that is not hex', `${HEX.slice(1)}g`],
    ['a prefix other than \\x', `0x${HEX}`],
    ['text before the digits', `key=${HEX}`],
    ['text after the digits', `${HEX};`],
  ])('a string of %s is refused without echoing it', (_label, value) => {
    const message = refusal(value);
    expect(message).toBe('VAULT_DB_CLAIM_KEY must be 64 hex digits (optionally prefixed \\x, as psql prints a bytea).');
  });

  test.each([31, 33])('%i bytes are refused with the length', (length) => {
    expect(refusal(new Uint8Array(length))).toBe(`VAULT_DB_CLAIM_KEY must be 32 bytes, not ${length}.`);
  });

  test.each([
    [null, 'null'],
    [42, 'number'],
    [undefined, 'undefined'],
  ])('%s is refused by its type', (value, type) => {
    expect(refusal(value)).toBe(`VAULT_DB_CLAIM_KEY must be a Uint8Array or a hex string, not ${type}.`);
  });
});

describe('claimRejection', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const now = 1_800_000_000;
  function at(dbNowOffset: number, verified: string | null = null) {
    vi.useFakeTimers({ now: now * 1000 });
    return claimRejection({ verified, db_now: now + dbNowOffset }, 'alice');
  }

  test('the claim verified for this user: no rejection', () => {
    expect(at(0, 'alice')).toBeNull();
  });

  test("verified for another user, or not at all, with the clocks in step: the key", () => {
    expect(at(0, 'bob')).toEqual({ kind: 'key' });
    expect(at(0)).toEqual({ kind: 'key' });
  });

  test('clocks apart by half a claim lifetime or more, either way: the clocks, with the skew', () => {
    const half = CLAIM_LIFETIME_SECONDS / 2;
    expect(at(half - 1)).toEqual({ kind: 'key' });
    expect(at(half)).toEqual({ kind: 'clock', skewSeconds: half });
    expect(at(-half)).toEqual({ kind: 'clock', skewSeconds: -half });
    expect(at(-(half - 1))).toEqual({ kind: 'key' });
  });

  test('no row at all is a refusal by the key, not decades of clock skew', () => {
    vi.useFakeTimers({ now: now * 1000 });
    expect(claimRejection(undefined, 'alice')).toEqual({ kind: 'key' });
  });
});

describe('ClaimRefusal', () => {
  // Internal: the service turns it into a ConfigurationError. Should one ever escape (a caller of
  // the feed functions outside the service), it must still say what it is.
  test('is named, and says that the database refused the claim and why', () => {
    const refusal = new ClaimRefusal({ kind: 'clock', skewSeconds: -120 });
    expect(refusal).toBeInstanceOf(Error);
    expect(refusal.name).toBe('ClaimRefusal');
    expect(refusal.message).toBe('the database refused the identity claim (clock)');
    expect(refusal.rejection).toEqual({ kind: 'clock', skewSeconds: -120 });
  });
});
