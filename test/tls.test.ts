/**
 * TLS against real servers: the Neon-shaped stack of scripts/neon-stack.sh (PostgreSQL 17 that
 * refuses plain TCP, PgBouncer with TLS both ways, certificates from a CA made for the run).
 *
 * Every sslmode connects with TLS where it should; a URL that asks for TLS never falls back to
 * plain TCP; certificate problems each end in one line that names the fix; and every connection
 * the package opens (the migrator's lock session and ORM, the reachability check, the ORM through
 * the pooler, the CLI, schema:validate) was encrypted, by the servers' own connection logs.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { createConfig } from '../src/config.js';
import { pgConnectionConfig } from '../src/connection-options.js';
import { checkDatabaseReachable } from '../src/database-url.js';
import { ConfigurationError } from '../src/errors.js';
import { runMigrations } from '../src/migrate.js';
import { SyncService } from '../src/sync/sync-service.js';
import { adminQuery, withDatabase } from '../scripts/database-admin.js';
import { runCli } from './support/cli.js';
import { envelope } from './support/fixtures.js';
import { neonStack, withParams } from './support/neon-stack.js';

const stack = neonStack();

/** The one-line ConfigurationError that connecting to `url` must end in. */
async function refusal(url: string, source: 'DATABASE_URL' | 'DIRECT_URL' = 'DATABASE_URL'): Promise<string> {
  let caught: unknown;
  try {
    await checkDatabaseReachable({ url, source });
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigurationError);
  const message = (caught as Error).message;
  expect(message).not.toContain('\n');
  expect(message).not.toMatch(/:[0-9a-f]{36}@/); // the stack's passwords are 36 hex digits
  return message;
}

/** Whether the session of a `pg.Client` made from the package's options is encrypted, by the server's own view. */
async function sessionTls(url: string): Promise<{ ssl: boolean; version: string | null }> {
  const client = new pg.Client(pgConnectionConfig(url));
  await client.connect();
  try {
    const { rows } = await client.query<{ ssl: boolean; version: string | null }>('select ssl, version from pg_stat_ssl where pid = pg_backend_pid()');
    return rows[0] as { ssl: boolean; version: string | null };
  } finally {
    await client.end();
  }
}

describe.skipIf(!stack)('on the Neon-shaped stack', () => {
  const s = stack as NonNullable<typeof stack>;
  const bare = (url: string) => withParams(url, { sslmode: null, sslrootcert: null });

  describe('each sslmode', () => {
    test.each([
      ['require (no CA: encrypted, nothing checked)', { sslmode: 'require', sslrootcert: null }],
      ['require with sslrootcert', { sslmode: 'require' }],
      ['verify-ca', { sslmode: 'verify-ca' }],
      ['verify-full', { sslmode: 'verify-full' }],
    ])('%s: an encrypted session, directly and through the pooler', async (_name, params) => {
      for (const url of [s.direct, s.pooled]) {
        expect(await sessionTls(withParams(url, params))).toMatchObject({ ssl: true, version: expect.stringMatching(/^TLSv1\.[23]$/) });
      }
    });

    test('verify-ca accepts a certificate for another host name; verify-full does not', async () => {
      expect((await sessionTls(withParams(s.wrongHost, { sslmode: 'verify-ca' }))).ssl).toBe(true);
      expect(await refusal(s.wrongHost)).toContain('presented a certificate for another host name');
    });

    test('disable (or no sslmode): the server refuses, and the line says how to ask for TLS', async () => {
      for (const url of [withParams(s.direct, { sslmode: 'disable', sslrootcert: null }), bare(s.direct), bare(s.pooled)]) {
        expect(await refusal(url)).toContain('accepts only encrypted connections: add sslmode=verify-full');
      }
    });
  });

  describe('no fallback to plain TCP', () => {
    test.each(['require', 'verify-ca', 'verify-full'])('sslmode=%s against a server without TLS fails with one line, and no session is opened', async (sslmode) => {
      const url = withParams(s.plain, { sslmode, sslrootcert: s.ca });
      const before = await plainPoolerLogins();
      expect(await refusal(url)).toContain('does not offer TLS, but the URL asks for it; vault-db never falls back to an unencrypted connection');
      expect(await plainPoolerLogins()).toBe(before);
    });

    test('the ORM fails too, instead of querying in plain text', async () => {
      // connect: false, so the query (not init's connection check) meets the server.
      const orm = await MikroORM.init(createConfig(withParams(s.plain, { sslmode: 'require' }), { connect: false, pool: { min: 0, max: 1 } }));
      try {
        await expect(orm.em.getConnection().execute('select 1')).rejects.toThrow(/does not support SSL/);
      } finally {
        await orm.close(true);
      }
    });
  });

  describe('certificate problems: one line each, naming the fix', () => {
    test("a CA this process does not trust (verify-full with Node's CAs only)", async () => {
      expect(await refusal(withParams(s.direct, { sslrootcert: null }))).toContain('a CA this process does not trust: add sslrootcert=<path of the CA certificate>');
    });

    test('a CA file of another CA (require with sslrootcert checks the chain, as libpq)', async () => {
      const otherCa = path.join(tmpdir(), `vault-db-other-ca-${randomBytes(4).toString('hex')}.pem`);
      await writeFile(otherCa, tls.rootCertificates[0] as string);
      try {
        expect(await refusal(withParams(s.direct, { sslmode: 'require', sslrootcert: otherCa }))).toContain('a CA this process does not trust');
      } finally {
        await rm(otherCa, { force: true });
      }
    });

    test('a host name the certificate does not name', async () => {
      const message = await refusal(s.wrongHost, 'DIRECT_URL');
      expect(message).toMatch(/^DIRECT_URL \(postgres:\/\/neondb_owner:\*\*\*@127\.0\.0\.2:\d+\/neondb\?sslmode=verify-full&sslrootcert=[^)]+\) presented a certificate for another host name/);
      expect(message).toContain('connect with a host name the certificate names');
    });

    test('an expired certificate', async () => {
      expect(await refusal(s.expired)).toContain('presented an expired certificate: the server needs a renewed certificate');
    });

    test('an sslrootcert that does not exist', async () => {
      const message = await refusal(withParams(s.direct, { sslrootcert: '/nonexistent/ca.pem' }), 'DIRECT_URL');
      expect(message).toBe("sslrootcert=/nonexistent/ca.pem in DIRECT_URL can't be read (ENOENT): check the path and that this user may read it.");
    });
  });

  describe('inside the sync service: a TLS problem is a ConfigurationError, not a raw driver error or a retry', () => {
    test.each([
      ['a CA this process does not trust', () => withParams(s.pooled, { sslrootcert: null }), 'a CA this process does not trust'],
      ['an expired certificate', () => s.expired, 'presented an expired certificate'],
      ['a server without TLS', () => withParams(s.plain, { sslmode: 'require', sslrootcert: s.ca }), 'does not offer TLS'],
    ])('%s', async (_name, url, words) => {
      const orm = await MikroORM.init(createConfig(url(), { connect: false, pool: { min: 0, max: 1 } }));
      try {
        const sync = new SyncService(orm.em, { claimKey: Buffer.alloc(32, 7) });
        let caught: unknown;
        try {
          await sync.pull('tls-user');
        } catch (error) {
          caught = error;
        }
        expect(caught).toBeInstanceOf(ConfigurationError);
        expect((caught as Error).message).toContain(words);
        expect((caught as Error).message).not.toContain('\n');
      } finally {
        await orm.close(true);
      }
    });
  });

  describe('every connection the package opens is encrypted', () => {
    const name = `vault_db_tls_${randomBytes(5).toString('hex')}`;
    let direct: string;
    let pooled: string;

    beforeAll(async () => {
      await adminQuery(s.direct, `create database "${name}"`);
      // sslmode=require without a CA: what Neon's dashboard hands out.
      direct = withParams(withDatabase(s.direct, name), { sslmode: 'require', sslrootcert: null });
      pooled = withParams(withDatabase(s.pooled, name), { sslmode: 'require', sslrootcert: null });
    });

    afterAll(async () => {
      await adminQuery(s.direct, `drop database if exists "${name}" with (force)`);
    });

    test('migrations, the reachability check, the ORM through the pooler, the CLI and schema:validate', async () => {
      await runMigrations({ url: direct, log: () => {} });
      await checkDatabaseReachable({ url: pooled, source: 'DATABASE_URL' });
      const orm = await MikroORM.init(createConfig(pooled, { pool: { min: 0, max: 3 } }));
      try {
        const sync = new SyncService(orm.em);
        await sync.enableVault('tls_user', envelope());
        await sync.push('tls_user', { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: randomBytes(32) }] });
        expect((await sync.pull('tls_user')).changes).toHaveLength(1);
      } finally {
        await orm.close(true);
      }
      // The CLI and schema:validate as a user runs them: no PGSSLMODE, the URL says it all.
      const migrate = await runCli('npm', ['run', 'db:migrate'], { DIRECT_URL: direct, DATABASE_URL: pooled });
      expect(migrate.code, migrate.stderr).toBe(0);
      const validate = await runCli('npm', ['run', 'schema:validate', '--', '--database-url', direct], { DATABASE_URL: direct });
      expect(validate.code, `${validate.stdout}\n${validate.stderr}`).toBe(0);
      for (const output of [migrate, validate]) expect(`${output.stdout}${output.stderr}`).not.toContain('SECURITY WARNING');

      // The servers' own records of every connection to this database: all of them with TLS.
      const authorized = new RegExp(`connection authorized: .*database=${name}( |$)`);
      const serverSessions = (await readFile(s.postgresLog, 'utf8')).split('\n').filter((line) => authorized.test(line));
      const poolerLoginsHere = (await readFile(s.poolerLog, 'utf8')).split('\n').filter((line) => line.includes(`login attempt: db=${name} `));
      // The lock session, the ORMs of runMigrations and of the CLI, schema:validate's, PgBouncer's.
      expect(serverSessions.length).toBeGreaterThanOrEqual(4);
      expect(poolerLoginsHere.length).toBeGreaterThanOrEqual(2);
      expect(serverSessions.filter((line) => !line.includes('SSL enabled (protocol=TLSv1.'))).toEqual([]);
      expect(poolerLoginsHere.filter((line) => !/ tls=TLSv1\.[23]\//.test(line))).toEqual([]);
    }, 120_000);
  });
});

/** How many client logins the PgBouncer without TLS has logged so far. */
async function plainPoolerLogins(): Promise<number> {
  const log = await readFile(path.join((stack as NonNullable<typeof stack>).dir, 'pgbouncer-plain.log'), 'utf8');
  return log.split('\n').filter((line) => line.includes('login attempt')).length;
}
