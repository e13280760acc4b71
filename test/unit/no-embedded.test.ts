/**
 * The library never starts a server by itself: with neither DATABASE_URL nor DIRECT_URL it fails
 * with one line naming both (a misconfigured deploy must not "succeed" against a throwaway
 * database). The embedded server is only behind `vault-db/embedded`.
 */
import { expect, test } from 'vitest';
import { NO_DATABASE_URL, resolveDatabaseUrl, resolveMigrationUrl } from '../../src/database-url.js';
import { ConfigurationError } from '../../src/errors.js';
import { runMigrations } from '../../src/migrate.js';
import { rejectionOf } from '../support/rejection.js';

test('no URL: one line naming DATABASE_URL and DIRECT_URL, from every resolver and runMigrations', async () => {
  for (const attempt of [resolveDatabaseUrl({}), resolveMigrationUrl({ DATABASE_URL: '  ' })]) {
    const error = await rejectionOf(attempt);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toBe(NO_DATABASE_URL);
  }
  expect(NO_DATABASE_URL).not.toContain('\n');
  expect(NO_DATABASE_URL).toMatch(/DATABASE_URL.*DIRECT_URL/);

  const saved = { DATABASE_URL: process.env.DATABASE_URL, DIRECT_URL: process.env.DIRECT_URL };
  delete process.env.DATABASE_URL;
  delete process.env.DIRECT_URL;
  try {
    await expect(runMigrations({ log: () => {} })).rejects.toThrow(NO_DATABASE_URL);
  } finally {
    for (const [key, value] of Object.entries(saved)) if (value !== undefined) process.env[key] = value;
  }
});

test('the library entry point does not reach the embedded server', async () => {
  const index = await import('../../src/index.js');
  expect(Object.keys(index)).not.toContain('startEmbeddedPostgres');
  const embedded = await import('../../src/embedded.js');
  expect(typeof embedded.startEmbeddedPostgres).toBe('function');
});

test('vault-db/embedded takes DIRECT_URL, then DATABASE_URL, and only then the embedded server', async () => {
  const { resolveDatabaseUrlOrEmbedded, resolveMigrationUrlOrEmbedded, EmbeddedServerError } = await import('../../src/embedded.js');
  const direct = 'postgres://owner@db.example/app';
  const pooled = 'postgres://app@pooler.example/app';
  expect(await resolveDatabaseUrlOrEmbedded({ DATABASE_URL: pooled, DIRECT_URL: direct })).toEqual({ url: pooled, source: 'DATABASE_URL' });
  expect(await resolveMigrationUrlOrEmbedded({ DATABASE_URL: pooled, DIRECT_URL: direct })).toEqual({ url: direct, source: 'DIRECT_URL' });
  expect(await resolveMigrationUrlOrEmbedded({ DATABASE_URL: pooled })).toEqual({ url: pooled, source: 'DATABASE_URL' });

  // With neither, each goes to the embedded server: a bad EMBEDDED_PG_PORT stops it before it
  // starts anything, and shows which way it went.
  const saved = process.env.EMBEDDED_PG_PORT;
  process.env.EMBEDDED_PG_PORT = 'no-port';
  try {
    for (const attempt of [resolveDatabaseUrlOrEmbedded({}), resolveMigrationUrlOrEmbedded({ DATABASE_URL: ' ' })]) {
      const error = await rejectionOf(attempt);
      expect(error).toBeInstanceOf(EmbeddedServerError);
      expect((error as InstanceType<typeof EmbeddedServerError>).reason).toBe('start_failed');
    }
  } finally {
    if (saved === undefined) delete process.env.EMBEDDED_PG_PORT;
    else process.env.EMBEDDED_PG_PORT = saved;
  }
});
