/**
 * The migration runner's options as pure logic (src/migrations-runner/options.ts and the
 * declaration half of pooler.ts): each refusal is a ConfigurationError whose one line names the
 * option or variable, the rule and the value, since that line is all `npm run db:migrate` prints;
 * the environment's variables are trimmed, and only a declaration about DATABASE_URL itself makes
 * a URL pooled. The mutation run over the migrations runner found these messages unasserted.
 */
import { describe, expect, test } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import { migratorOptionsFromEnv, parseMigratorOptions } from '../../src/migrations-runner/options.js';
import { pooledDeclaration } from '../../src/migrations-runner/pooler.js';

/** The message of the ConfigurationError `run` throws. */
function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigurationError, got none');
}

describe('parseMigratorOptions', () => {
  test('accepts what is valid and hands back only what was given', () => {
    expect(parseMigratorOptions({ ddlLockAttempts: 3, onUnknownMigrations: 'warn' })).toEqual({ ddlLockAttempts: 3, onUnknownMigrations: 'warn' });
  });

  test('names the option, the rule and where it came from', () => {
    expect(refusal(() => parseMigratorOptions({ ddlLockAttempts: 0 }))).toBe('Invalid migration option ddlLockAttempts: Number must be greater than or equal to 1.');
    expect(refusal(() => parseMigratorOptions({ lockTimeoutMs: 'x' }, 'runMigrations option'))).toBe('Invalid runMigrations option lockTimeoutMs: Expected number, received string.');
    expect(refusal(() => parseMigratorOptions({ log: 1 }))).toBe('Invalid migration option log: must be a function.');
  });

  test('names unknown keys, and says "(options)" when the whole value is wrong', () => {
    expect(refusal(() => parseMigratorOptions({ bogus: 1, other: 2 }))).toBe("Invalid migration option (options) bogus, other: Unrecognized key(s) in object: 'bogus', 'other'.");
    expect(refusal(() => parseMigratorOptions(null))).toBe('Invalid migration option (options): Expected object, received null.');
  });
});

describe('migratorOptionsFromEnv', () => {
  test('reads trimmed values, skips empty ones, and converts numbers', () => {
    expect(migratorOptionsFromEnv({ VAULT_DB_DDL_LOCK_ATTEMPTS: ' 7 ', VAULT_DB_UNKNOWN_MIGRATIONS: 'warn', VAULT_DB_MIGRATION_LOCK_TIMEOUT_MS: '' })).toEqual({ ddlLockAttempts: 7, onUnknownMigrations: 'warn' });
    expect(migratorOptionsFromEnv({})).toEqual({});
  });

  test('a number variable that is not a whole number is refused as such, naming it and the value', () => {
    expect(refusal(() => migratorOptionsFromEnv({ VAULT_DB_DDL_LOCK_ATTEMPTS: 'three' }))).toBe('VAULT_DB_DDL_LOCK_ATTEMPTS must be a whole number, not "three".');
    expect(refusal(() => migratorOptionsFromEnv({ VAULT_DB_DDL_LOCK_TIMEOUT_MS: '1.5' }))).toBe('VAULT_DB_DDL_LOCK_TIMEOUT_MS must be a whole number, not "1.5".');
    expect(refusal(() => migratorOptionsFromEnv({ VAULT_DB_MIGRATION_LOCK_TIMEOUT_MS: '10s' }))).toBe('VAULT_DB_MIGRATION_LOCK_TIMEOUT_MS must be a whole number, not "10s".');
  });

  test("a value the option's rule refuses names the variable, not the option", () => {
    expect(refusal(() => migratorOptionsFromEnv({ VAULT_DB_DDL_LOCK_ATTEMPTS: '101' }))).toBe('VAULT_DB_DDL_LOCK_ATTEMPTS="101" is not valid: Number must be less than or equal to 100.');
    expect(refusal(() => migratorOptionsFromEnv({ VAULT_DB_UNKNOWN_MIGRATIONS: 'ignore' }))).toBe(
      `VAULT_DB_UNKNOWN_MIGRATIONS="ignore" is not valid: Invalid enum value. Expected 'refuse' | 'warn', received 'ignore'.`,
    );
  });
});

describe('pooledDeclaration', () => {
  const url = 'postgres://app@db.example/vault';

  test('an explicit option wins over the environment', () => {
    expect(pooledDeclaration(url, true, {})).toBe('declared pooled (pooled: true)');
    expect(pooledDeclaration(url, false, { DATABASE_URL_POOLED: '1', DATABASE_URL: url })).toBeNull();
  });

  test('DATABASE_URL_POOLED (1, true or yes, any case, trimmed) declares DATABASE_URL pooled, even with spaces around the URL', () => {
    for (const flag of ['1', ' TRUE ', 'yes']) {
      expect(pooledDeclaration(url, undefined, { DATABASE_URL_POOLED: flag, DATABASE_URL: ` ${url} ` }), flag).toBe('DATABASE_URL is declared pooled (DATABASE_URL_POOLED)');
    }
    expect(pooledDeclaration(url, undefined, { DATABASE_URL_POOLED: 'no', DATABASE_URL: url })).toBeNull();
  });

  test('it says nothing about another URL, nor about the same text given as DIRECT_URL', () => {
    expect(pooledDeclaration(url, undefined, { DATABASE_URL_POOLED: '1', DATABASE_URL: 'postgres://app@other.example/vault' })).toBeNull();
    expect(pooledDeclaration(url, undefined, { DATABASE_URL_POOLED: '1', DATABASE_URL: url, DIRECT_URL: ` ${url}` })).toBeNull();
    expect(pooledDeclaration(url, undefined, { DATABASE_URL_POOLED: '1' })).toBeNull();
  });

  test("Neon's -pooler host is pooled whatever the environment says", () => {
    expect(pooledDeclaration('postgres://app@ep-cool-1234-pooler.eu-central-1.aws.neon.tech/vault', undefined, {})).toBe('its host ep-cool-1234-pooler.eu-central-1.aws.neon.tech is a Neon pooler endpoint ("-pooler")');
  });
});
