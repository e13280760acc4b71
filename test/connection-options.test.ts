/**
 * How a URL's TLS settings become connection options, without a server: each sslmode means what
 * libpq says, nothing can ask for a fallback to plain TCP, the ORM gets the same options as a
 * pg.Client, and bad settings are one-line ConfigurationErrors that name the setting.
 * (test/tls.test.ts proves the same against real TLS servers.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { createConfig } from '../src/config.js';
import { ormDriverOptions, pgConnectionConfig, tlsSettings } from '../src/connection-options.js';
import { parseDatabaseUrl } from '../src/database-url.js';
import { ConfigurationError } from '../src/errors.js';

const BASE = 'postgres://alice:secretpw@db.example.com:5432/vault';
const folder = mkdtempSync(path.join(tmpdir(), 'vault-db-tls-'));
const CA_FILE = path.join(folder, 'ca.pem');
const CA_TEXT = '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n';
writeFileSync(CA_FILE, CA_TEXT);
afterAll(() => rmSync(folder, { recursive: true, force: true }));
const NO_ENV = {};

type Ssl = Exclude<ReturnType<typeof pgConnectionConfig>['ssl'], undefined>;
const sslOf = (url: string, env: NodeJS.ProcessEnv = NO_ENV): Ssl => pgConnectionConfig(url, { env }).ssl as Ssl;

function configurationError(fn: () => unknown): ConfigurationError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigurationError);
  const error = caught as ConfigurationError;
  expect(error.code).toBe('configuration');
  expect(error.message).not.toContain('\n');
  expect(error.message).not.toContain('secretpw');
  return error;
}

describe('each sslmode means what libpq says', () => {
  test('none given: no TLS, as node-pg', () => {
    expect(sslOf(BASE)).toBe(false);
    expect(tlsSettings(BASE, { env: NO_ENV })).toEqual({ sslmode: 'disable', sslmodeFrom: 'default' });
  });

  test('disable: no TLS, and a CA file is not even read', () => {
    expect(sslOf(`${BASE}?sslmode=disable&sslrootcert=/does/not/exist`)).toBe(false);
  });

  test('require: encrypt, do not verify (node-pg alone would verify, and warn)', () => {
    expect(sslOf(`${BASE}?sslmode=require`)).toEqual({ rejectUnauthorized: false });
  });

  test('require with sslrootcert: the chain is checked against that CA, the host name is not (libpq: as verify-ca)', () => {
    const ssl = sslOf(`${BASE}?sslmode=require&sslrootcert=${CA_FILE}`) as { ca?: string; rejectUnauthorized?: boolean; checkServerIdentity?: () => unknown };
    expect(ssl.ca).toBe(CA_TEXT);
    expect(ssl.rejectUnauthorized).toBeUndefined();
    expect(ssl.checkServerIdentity?.()).toBeUndefined();
  });

  test('verify-ca: the chain against sslrootcert, not the host name', () => {
    const ssl = sslOf(`${BASE}?sslmode=verify-ca&sslrootcert=${CA_FILE}`) as { ca?: string; rejectUnauthorized?: boolean; checkServerIdentity?: unknown };
    expect(ssl.ca).toBe(CA_TEXT);
    expect(ssl.rejectUnauthorized).toBeUndefined();
    expect(typeof ssl.checkServerIdentity).toBe('function');
  });

  test("verify-full: chain and host name, against sslrootcert or else Node's CAs", () => {
    expect(sslOf(`${BASE}?sslmode=verify-full&sslrootcert=${CA_FILE}`)).toEqual({ ca: CA_TEXT });
    expect(sslOf(`${BASE}?sslmode=verify-full`)).toEqual({});
    expect(sslOf(`${BASE}?sslmode=verify-full&sslrootcert=system`)).toEqual({});
  });

  test("node-pg's own ssl=true/false keep their meaning: verify-full and disable", () => {
    expect(sslOf(`${BASE}?ssl=true`)).toEqual({});
    expect(sslOf(`${BASE}?ssl=false`)).toBe(false);
  });
});

describe('the environment, as libpq reads it', () => {
  test('PGSSLMODE and PGSSLROOTCERT apply when the URL says nothing', () => {
    const env = { PGSSLMODE: 'verify-full', PGSSLROOTCERT: CA_FILE };
    expect(sslOf(BASE, env)).toEqual({ ca: CA_TEXT });
    expect(tlsSettings(BASE, { env })).toEqual({ sslmode: 'verify-full', sslmodeFrom: 'PGSSLMODE', sslrootcert: CA_FILE });
  });

  test('the URL wins over PGSSLMODE', () => {
    expect(sslOf(`${BASE}?sslmode=disable`, { PGSSLMODE: 'verify-full' })).toBe(false);
    expect(sslOf(`${BASE}?sslmode=require`, { PGSSLMODE: 'disable' })).toEqual({ rejectUnauthorized: false });
  });
});

describe('no setting can ask for a fallback to plain TCP', () => {
  test.each(['prefer', 'allow'])('sslmode=%s is refused, naming the safe choices', (mode) => {
    const error = configurationError(() => pgConnectionConfig(`${BASE}?sslmode=${mode}`, { variable: 'DATABASE_URL', env: NO_ENV }));
    expect(error.message).toContain(`sslmode=${mode} in DATABASE_URL`);
    expect(error.message).toContain('unencrypted');
    expect(error.message).toContain('sslmode=verify-full');
  });

  test('PGSSLMODE=prefer is refused too, naming the variable', () => {
    expect(configurationError(() => pgConnectionConfig(BASE, { env: { PGSSLMODE: 'prefer' } })).message).toMatch(/^PGSSLMODE=prefer /);
  });

  test("an unknown mode (node-pg's no-verify, a typo) is refused with the list of modes", () => {
    for (const mode of ['no-verify', 'verify_full', '']) {
      const error = configurationError(() => tlsSettings(`${BASE}?sslmode=${mode}`, { variable: 'DIRECT_URL', env: NO_ENV }));
      expect(error.message).toContain('disable, require, verify-ca, verify-full');
    }
  });
});

describe('settings that could not work are refused before connecting', () => {
  test('verify-ca without sslrootcert', () => {
    const error = configurationError(() => tlsSettings(`${BASE}?sslmode=verify-ca`, { variable: 'DIRECT_URL', env: NO_ENV }));
    expect(error.message).toContain('needs sslrootcert=');
  });

  test('sslrootcert=system with a mode that does not check the host name (as libpq 16)', () => {
    expect(configurationError(() => tlsSettings(`${BASE}?sslmode=require&sslrootcert=system`, { env: NO_ENV })).message).toContain('verify-full');
  });

  test('an sslrootcert that cannot be read: one line naming the file, the URL and the reason', () => {
    const missing = path.join(folder, 'missing.pem');
    const error = configurationError(() => pgConnectionConfig(`${BASE}?sslmode=verify-full&sslrootcert=${missing}`, { variable: 'DATABASE_URL', env: NO_ENV }));
    expect(error.message).toBe(`sslrootcert=${missing} in DATABASE_URL can't be read (ENOENT): check the path and that this user may read it.`);
  });

  test('parseDatabaseUrl, which every URL from the environment goes through, checks the TLS settings too', () => {
    expect(configurationError(() => parseDatabaseUrl(`${BASE}?sslmode=prefer`, 'DATABASE_URL')).message).toContain('sslmode=prefer in DATABASE_URL');
  });
});

describe('the ORM gets the same connection options as a pg.Client', () => {
  test("createConfig passes the URL's TLS to the driver (MikroORM itself drops sslmode)", () => {
    const url = `${BASE}?sslmode=verify-full&sslrootcert=${CA_FILE}`;
    const driverOptions = createConfig(url).driverOptions as { connection: Record<string, unknown> };
    expect(driverOptions.connection).toEqual(pgConnectionConfig(url));
    expect(driverOptions.connection.ssl).toEqual({ ca: CA_TEXT });
  });

  test("the caller's driver options are merged, not replaced", () => {
    const log = { warn: () => {} };
    const driverOptions = createConfig(`${BASE}?sslmode=require`, { driverOptions: { connection: { application_name: 'mine' }, log } }).driverOptions as {
      connection: Record<string, unknown>;
      log: unknown;
    };
    expect(driverOptions.connection).toMatchObject({ application_name: 'mine', ssl: { rejectUnauthorized: false }, host: 'db.example.com' });
    expect(driverOptions.log).toBe(log);
  });

  test('host, port, user, password and database come from the same parse, TLS parameters are not sent on', () => {
    const config = ormDriverOptions(`postgres://al%40ice:p%2Fw@db.example.com:6543/my%20vault?sslmode=require&application_name=app`).connection;
    expect(config).toMatchObject({ host: 'db.example.com', port: 6543, user: 'al@ice', password: 'p/w', database: 'my vault', application_name: 'app' });
    expect(Object.keys(config)).not.toContain('sslmode');
  });
});
