/**
 * The parts of src/sync/claim-key.ts that need no database: the words of a refused claim, and
 * where a service's key comes from. Reading and rotating the
 * key in the database is tested in test/security/.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { describe, expect, test } from 'vitest';
import { CLAIM_KEY_ENV, ClaimKeySource, claimRefused } from '../../src/sync/claim-key.js';
import { ConfigurationError } from '../../src/errors.js';

const HEX = 'ab'.repeat(32);
/** Never used: each source below has its key configured, or is only asked where it comes from. */
const unusedEm = {} as EntityManager;

describe('claimRefused', () => {
  test("the database's clock ahead or behind, by how much, and what to do", () => {
    expect(claimRefused({ kind: 'clock', skewSeconds: 95 }, CLAIM_KEY_ENV).message).toBe(
      "The database refused this service's identity claim: its clock is 95 s ahead of this host's, and a claim lives 60 s; synchronise the clocks (or check the claim key from VAULT_DB_CLAIM_KEY).",
    );
    expect(claimRefused({ kind: 'clock', skewSeconds: -95 }, 'the database').message).toContain('its clock is 95 s behind this host');
  });

  test('the key: where it came from and how to get the right one', () => {
    const error = claimRefused({ kind: 'key' }, 'options.claimKey');
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toBe(
      "The database refused this service's identity claim: the claim key from options.claimKey is not the database's (was it rotated?); set VAULT_DB_CLAIM_KEY to the key the owner prints with: select encode(key, 'hex') from public.vault_db_claim_key;",
    );
  });
});

describe('ClaimKeySource', () => {
  test('the option wins over the variable, and a configured key is never forgotten', async () => {
    const source = new ClaimKeySource(unusedEm, HEX, { [CLAIM_KEY_ENV]: 'cd'.repeat(32) });
    expect(source.origin).toBe('options.claimKey');
    expect((await source.get()).toString('hex')).toBe(HEX);
    expect(source.refused()).toBe(false);
    expect((await source.get()).toString('hex')).toBe(HEX);
  });

  test('the variable, when there is no option', async () => {
    const source = new ClaimKeySource(unusedEm, undefined, { [CLAIM_KEY_ENV]: HEX });
    expect(source.origin).toBe(CLAIM_KEY_ENV);
    expect((await source.get()).toString('hex')).toBe(HEX);
    expect(source.refused()).toBe(false);
  });

  test('an empty variable is no variable: the key is read from the database, and read again after a refusal', () => {
    const source = new ClaimKeySource(unusedEm, undefined, { [CLAIM_KEY_ENV]: '' });
    expect(source.origin).toBe('the database');
    expect(source.refused()).toBe(true);
  });

  test('a malformed variable fails at construction, naming it', () => {
    expect(() => new ClaimKeySource(unusedEm, undefined, { [CLAIM_KEY_ENV]: 'nope' })).toThrow(/^VAULT_DB_CLAIM_KEY must be 64 hex digits/);
  });
});
