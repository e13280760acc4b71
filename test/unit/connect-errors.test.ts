/**
 * The one line `checkDatabaseReachable` prints for each kind of connection failure, and the URL
 * handling around it, without a database: the failures are the driver's error shapes, and the
 * connections that are attempted go to a closed port.
 */
import { describe, expect, test } from 'vitest';
import { NO_DATABASE_URL, checkDatabaseReachable, explainConnectError, redactUrl, resolveDatabaseUrl } from '../../src/database-url.js';
import { ConfigurationError } from '../../src/errors.js';

/** An error as node or node-pg raises it: a message and an optional code. */
function driverError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

describe('explainConnectError', () => {
  test.each([
    ['ECONNREFUSED', 'refused the connection: is the server running, and are host and port right?'],
    ['ENOTFOUND', 'names a host that does not resolve: check the host name.'],
    ['EAI_AGAIN', 'names a host that does not resolve: check the host name.'],
    ['ETIMEDOUT', 'did not answer in time: check the host, the port and any firewall.'],
    ['28P01', 'rejected the login: check the user name and password.'],
    ['28000', 'rejected the login: check the user name and password.'],
    ['3D000', 'names a database that does not exist: create it or fix the database name.'],
  ])('code %s', (code, line) => {
    expect(explainConnectError(driverError('whatever the driver said', code))).toBe(line);
  });

  test('a message about a timeout, without a code, is a timeout', () => {
    expect(explainConnectError(driverError('Connection terminated due to connection timeout'))).toBe(
      'did not answer in time: check the host, the port and any firewall.',
    );
  });

  test.each([
    ['a message naming SSL', driverError('SSL routines::unexpected eof while reading')],
    ['a message naming TLS', driverError('Client network socket disconnected before secure TLS connection was established')],
    ['a message naming a certificate', driverError('bad certificate format')],
    ['an ERR_SSL_ code', driverError('wrong version number', 'ERR_SSL_WRONG_VERSION_NUMBER')],
    ['an ERR_TLS_ code', driverError('handshake went wrong', 'ERR_TLS_HANDSHAKE_TIMEOUT')],
  ])('%s is a failed TLS handshake, with the driver message', (_label, error) => {
    expect(explainConnectError(error)).toBe(`failed the TLS handshake (${error.message}): check sslmode and sslrootcert in the URL.`);
  });

  test('anything else is passed on with its message', () => {
    expect(explainConnectError(driverError('something odd', 'EWHATEVER'))).toBe('could not be used: something odd.');
  });

  test('a thrown non-error is described by its text', () => {
    expect(explainConnectError('a string')).toBe('could not be used: a string.');
  });

  test('a certificate from an untrusted CA gets the TLS module\'s own line', () => {
    expect(explainConnectError(driverError('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'))).toMatch(/^presented a certificate signed by a CA/);
  });
});

describe('checkDatabaseReachable, without a server', () => {
  test('the embedded server is named as such', async () => {
    const error = await checkDatabaseReachable({ url: 'postgres://u@127.0.0.1:1/db', source: 'embedded' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toBe('The embedded PostgreSQL refused the connection: is the server running, and are host and port right?');
    expect((error as Error).cause).toMatchObject({ code: 'ECONNREFUSED' });
  });

  test('a configuration error of the URL itself comes through as it is, naming the variable', async () => {
    const url = 'postgres://u@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem';
    const error = await checkDatabaseReachable({ url, source: 'DIRECT_URL' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    // pgConnectionConfig's own line, which names the file and the variable: not wrapped again.
    expect((error as Error).message).toMatch(/^sslrootcert=\/nonexistent\/ca\.pem in DIRECT_URL/);
    expect((error as Error).message).not.toContain('(postgres://');
  });
});

describe('resolveDatabaseUrl', () => {
  test('DATABASE_URL, trimmed and named', async () => {
    expect(await resolveDatabaseUrl({ DATABASE_URL: ' postgres://h/db ' })).toEqual({ url: 'postgres://h/db', source: 'DATABASE_URL' });
  });

  test('unset or blank: the one line that says what to set', async () => {
    for (const env of [{}, { DATABASE_URL: '  ' }]) {
      await expect(resolveDatabaseUrl(env)).rejects.toThrow(NO_DATABASE_URL);
    }
  });
});

test('redactUrl hides passwords given as query parameters too', () => {
  const redacted = redactUrl('postgres://u@h/db?password=topsecret&sslpassword=keypass&sslmode=require');
  expect(redacted).not.toMatch(/topsecret|keypass/);
  expect(new URL(redacted).searchParams.get('password')).toBe('***');
  expect(new URL(redacted).searchParams.get('sslpassword')).toBe('***');
  expect(new URL(redacted).searchParams.get('sslmode')).toBe('require');
});
