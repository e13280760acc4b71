/**
 * A bad database configuration ends in one line that says what to fix, never in a stack trace,
 * and never prints a password: from the library functions and from `npm run db:migrate`.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, test } from 'vitest';
import { checkDatabaseReachable, parseDatabaseUrl, redactUrl, resolveMigrationUrl } from '../src/database-url.js';
import { ConfigurationError } from '../src/errors.js';
import { withDatabase } from '../scripts/database-admin.js';
import { runCli } from './support/cli.js';

/** Calls `fn` and returns the ConfigurationError it must throw or reject with. */
async function configurationError(fn: () => unknown): Promise<ConfigurationError> {
  let caught: unknown;
  try {
    await fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigurationError);
  const error = caught as ConfigurationError;
  expect(error.code).toBe('configuration');
  expect(error.message).not.toContain('\n');
  return error;
}

describe('parseDatabaseUrl', () => {
  test('rejects a value that is not a URL, naming the variable and the expected form', async () => {
    const error = await configurationError(() => parseDatabaseUrl('nonsense', 'DATABASE_URL'));
    expect(error.message).toMatch(/^DATABASE_URL is not a valid URL/);
    expect(error.message).toContain('postgres://');
  });

  test('rejects another database scheme', async () => {
    const error = await configurationError(() => parseDatabaseUrl('mysql://x', 'DATABASE_URL'));
    expect(error.message).toBe('DATABASE_URL must start with postgres:// or postgresql://, not mysql://.');
  });

  test('rejects a URL without a host', async () => {
    const error = await configurationError(() => parseDatabaseUrl('postgres:///vault', 'DIRECT_URL'));
    expect(error.message).toBe('DIRECT_URL has no host name.');
  });

  test.each(['postgres//u:secretpw@db.example.com/vault', 'mysql://u:secretpw@db.example.com/vault'])(
    'does not echo a rejected value, which may hold a password: %s',
    async (value) => {
      const error = await configurationError(() => parseDatabaseUrl(value, 'DATABASE_URL'));
      expect(error.message).not.toContain('secretpw');
    },
  );

  test.each(['postgres://u:p@db.example.com:5432/vault', 'postgresql://u@db.example.com/vault?sslmode=require'])(
    'accepts %s',
    (value) => {
      expect(parseDatabaseUrl(value, 'DATABASE_URL').hostname).toBe('db.example.com');
    },
  );
});

describe('resolveMigrationUrl', () => {
  test('prefers DIRECT_URL, since the pooled URL breaks the advisory lock', async () => {
    const env = { DIRECT_URL: 'postgres://u@direct.example.com/v', DATABASE_URL: 'postgres://u@pooled.example.com/v' };
    expect(await resolveMigrationUrl(env)).toEqual({ url: env.DIRECT_URL, source: 'DIRECT_URL' });
  });

  test('validates DIRECT_URL and names it in the error', async () => {
    const error = await configurationError(() => resolveMigrationUrl({ DIRECT_URL: 'nonsense', DATABASE_URL: 'postgres://u@h/v' }));
    expect(error.message).toMatch(/^DIRECT_URL /);
  });
});

describe('redactUrl', () => {
  test('replaces the password and keeps what helps to debug', () => {
    const shown = redactUrl('postgres://alice:secretpw@db.example.com:5432/vault?sslmode=require');
    expect(shown).not.toContain('secretpw');
    expect(shown).toBe('postgres://alice:***@db.example.com:5432/vault?sslmode=require');
  });

  test('hides a percent-encoded password too', () => {
    expect(redactUrl('postgres://alice:s%40cret%2Fpw@h/v')).toBe('postgres://alice:***@h/v');
  });

  test('leaves a URL without a password as it is', () => {
    expect(redactUrl('postgres://alice@h:5432/v')).toBe('postgres://alice@h:5432/v');
  });

  test('does not echo an unparseable value', () => {
    expect(redactUrl('postgres//alice:secretpw@h/v')).toBe('(unparseable URL)');
  });
});

describe('checkDatabaseReachable', () => {
  test('a refused connection is one line that says so, without the password', async () => {
    const error = await configurationError(() =>
      checkDatabaseReachable({ url: 'postgres://u:secretpw@127.0.0.1:1/db', source: 'DATABASE_URL' }),
    );
    expect(error.message).toContain('refused');
    expect(error.message).toContain('DATABASE_URL (postgres://u:***@127.0.0.1:1/db)');
    expect(error.message).not.toContain('secretpw');
  });

  test('a database that does not exist is named as the problem', async () => {
    const url = withDatabase(inject('serverUrl'), `vault_db_missing_${randomBytes(4).toString('hex')}`);
    const error = await configurationError(() => checkDatabaseReachable({ url, source: 'DATABASE_URL' }));
    expect(error.message).toContain('names a database that does not exist');
  });

  test('a reachable server answers with its version', async () => {
    expect(await checkDatabaseReachable({ url: inject('serverUrl'), source: 'DATABASE_URL' })).toMatch(/^\d+\.\d+/);
  });
});

// Child processes of a couple of seconds each, so they run side by side.
describe.concurrent('npm run db:migrate with a bad DATABASE_URL', () => {
  /** Lines a user sees, from both streams. */
  async function migrate(databaseUrl: string): Promise<{ code: number | null; output: string; vaultDbLines: string[] }> {
    const result = await runCli('npm', ['run', 'db:migrate'], { DATABASE_URL: databaseUrl });
    const output = `${result.stdout}\n${result.stderr}`;
    return { code: result.code, output, vaultDbLines: output.split('\n').filter((line) => line.startsWith('vault-db:')) };
  }

  test('a malformed URL: exit 1, one vault-db line, no stack trace', async ({ expect }) => {
    const { code, output, vaultDbLines } = await migrate('not a url');
    expect(code).toBe(1);
    expect(vaultDbLines).toEqual([expect.stringMatching(/^vault-db: DATABASE_URL is not a valid URL/)]);
    expect(output).not.toContain('    at ');
  });

  test('an unreachable server: exit 1, one vault-db line, no stack trace, no password', async ({ expect }) => {
    const { code, output, vaultDbLines } = await migrate('postgres://u:secretpw@127.0.0.1:1/db');
    expect(code).toBe(1);
    expect(vaultDbLines).toEqual([expect.stringContaining('refused the connection')]);
    expect(output).not.toContain('    at ');
    expect(output).not.toContain('secretpw');
  });
});
