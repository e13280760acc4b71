/**
 * Starting the embedded server's postmaster and reading why it failed (src/embedded/postmaster.ts),
 * with no PostgreSQL cluster of its own: the URL and flags it is given, the access rules written
 * before every start, the one-line causes read from a log, and spawnPostmaster on stand-in
 * `postgres` programs (small shell scripts that write `postmaster.pid` as PostgreSQL does, print
 * what a failing server prints, or exit). verifyServer is checked against a port nothing listens
 * on, against fake servers that speak just enough of PostgreSQL's wire protocol to refuse a login
 * or answer `show data_directory`, and, when the run's DATABASE_URL is the machine's own server
 * (postgres://root@127.0.0.1:5432), against that server as a server of another data dir.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { EmbeddedServerError } from '../../src/embedded/errors.js';
import { type Layout, metaPaths } from '../../src/embedded/layout.js';
import {
  classifyStartFailure,
  LostStartRace,
  serverArguments,
  serverUrl,
  spawnPostmaster,
  type StartedPostmaster,
  verifyServer,
  writeAccessRules,
} from '../../src/embedded/postmaster.js';
import type { ServerUser } from '../../src/embedded/server-user.js';
import { useStandIns } from './stand-ins.js';
import { rejectionOf } from '../support/rejection.js';
import { freePort, queryOne, waitUntil } from './support.js';

const standIns = useStandIns();
const isRoot = process.getuid?.() === 0;
/** This file's ports (for the fake servers and the port nothing listens on). */
const PORTS: [number, number] = [54470, 54479];

function me(): ServerUser {
  return { name: 'me', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, switched: false };
}

/** The OS user `postgres` (as root only: the user the server runs as). */
function postgresUser(): ServerUser {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { name: 'postgres', uid: id('-u'), gid: id('-g'), switched: true };
}

/** A layout of `dataDir` as layout.ts builds one, with `postgres` as the server program. */
function layoutOf(dataDir: string, postgres = '/nonexistent/postgres', user: ServerUser = me()): Layout {
  return {
    requestedDir: dataDir,
    dataDir,
    ...metaPaths(dataDir),
    user,
    binaries: { nativeDir: path.dirname(path.dirname(postgres)), postgres, initdb: path.join(path.dirname(postgres), 'initdb') },
    major: 17,
  };
}

/** A new data dir in the scratch folder, with its vault-db/ meta folder. */
const aDataDir = standIns.freshDataDir;

/** A `#!/bin/sh` stand-in for the postgres program; it gets the server flags (`-D <dataDir>` is $2, `-p <port>` is $4). */
async function standIn(body: string): Promise<string> {
  const bin = path.join(standIns.folder(), 'bin');
  await mkdir(bin, { recursive: true });
  const file = path.join(bin, `postgres-${Math.random().toString(36).slice(2)}`);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

/** The shell command that writes `postmaster.pid` as PostgreSQL does, for `pid` and `status`. */
function writePidFile(pid: string, status: string): string {
  return `printf '%s\\n' "${pid}" "$2" 1764583200 "$4" '' 127.0.0.1 '  5499001         0' '${status}' > "$2/postmaster.pid"`;
}

// The postmasters this file started: they run in their own session, and stand-ins.ts doesn't know them.
const started: StartedPostmaster[] = [];
afterEach(() => {
  for (const { child } of started.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

async function spawnOf(layout: Layout, port: number, deadline: number): Promise<StartedPostmaster> {
  const postmaster = await spawnPostmaster(layout, port, deadline);
  started.push(postmaster);
  return postmaster;
}

/** What `ready` rejected with; fails the test if it resolved. */
function failureOf(postmaster: StartedPostmaster): Promise<unknown> {
  return rejectionOf(postmaster.ready);
}

/** `error` is an EmbeddedServerError with `reason` and exactly `message` (plus the log file), and names the log file. */
function expectFailure(error: unknown, reason: string, message: string, logFile: string): void {
  expect(error).toBeInstanceOf(EmbeddedServerError);
  const e = error as EmbeddedServerError;
  expect(e.reason).toBe(reason);
  expect(e.message).toBe(`${message} Server log: ${logFile}`);
  expect(e.logFile).toBe(logFile);
}

describe('serverUrl', () => {
  test('names the postgres user and database on 127.0.0.1 with TLS disabled', () => {
    expect(serverUrl(5499, 'secret')).toBe('postgres://postgres:secret@127.0.0.1:5499/postgres?sslmode=disable');
  });

  test('the password is URL-encoded, so any password survives the round trip', () => {
    const password = 'a/b@c%d:e?f#g h';
    const url = serverUrl(54321, password);
    expect(url).toBe('postgres://postgres:a%2Fb%40c%25d%3Ae%3Ff%23g%20h@127.0.0.1:54321/postgres?sslmode=disable');
    const parsed = new URL(url);
    expect(decodeURIComponent(parsed.password)).toBe(password);
    expect(parsed.username).toBe('postgres');
    expect(parsed.hostname).toBe('127.0.0.1');
    expect(parsed.port).toBe('54321');
    expect(parsed.pathname).toBe('/postgres');
    expect(parsed.searchParams.get('sslmode')).toBe('disable');
  });
});

describe('serverArguments', () => {
  test('TCP on 127.0.0.1 only, no Unix socket, scram passwords, English messages', () => {
    expect(serverArguments(layoutOf('/srv/data'), 5499)).toEqual([
      '-D', '/srv/data',
      '-p', '5499',
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'password_encryption=scram-sha-256',
      '-c', 'max_connections=200',
      '-c', 'fsync=off',
      '-c', 'lc_messages=C',
    ]);
  });
});

describe('writeAccessRules', () => {
  const RULES = [
    '# Written by vault-db before every start of the embedded server; changes are overwritten.',
    '# Password logins (scram-sha-256) over 127.0.0.1 only; the password is in vault-db/password.',
    'host all all 127.0.0.1/32 scram-sha-256',
    '',
  ].join('\n');

  test('pg_hba.conf allows only scram-sha-256 password logins over 127.0.0.1, and only its owner may read it', async () => {
    const dataDir = await aDataDir();
    await writeAccessRules(layoutOf(dataDir));
    const file = path.join(dataDir, 'pg_hba.conf');
    expect(await readFile(file, 'utf8')).toBe(RULES);
    const info = await stat(file);
    expect(info.mode & 0o777).toBe(0o600);
    expect(info.uid).toBe(process.getuid?.());
    expect((await readdir(dataDir)).sort(), 'no partial file left behind').toEqual(['pg_hba.conf', 'vault-db']);
  });

  test('rules written by anything else (trust, say) are replaced', async () => {
    const dataDir = await aDataDir();
    const file = path.join(dataDir, 'pg_hba.conf');
    await writeFile(file, 'local all all trust\nhost all all 0.0.0.0/0 trust\n', { mode: 0o644 });
    await writeAccessRules(layoutOf(dataDir));
    expect(await readFile(file, 'utf8')).toBe(RULES);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  test.skipIf(!isRoot)('as root, the file belongs to the user the server runs as, and only when that user is switched to', async () => {
    const postgres = postgresUser();
    const dataDir = await aDataDir();
    await writeAccessRules(layoutOf(dataDir, undefined, postgres));
    const info = await stat(path.join(dataDir, 'pg_hba.conf'));
    expect([info.uid, info.gid]).toEqual([postgres.uid, postgres.gid]);
    expect(await readFile(path.join(dataDir, 'pg_hba.conf'), 'utf8')).toBe(RULES);

    const notSwitched = await aDataDir();
    await writeAccessRules(layoutOf(notSwitched, undefined, { ...postgres, switched: false }));
    expect((await stat(path.join(notSwitched, 'pg_hba.conf'))).uid, 'a user not switched to gets nothing handed over').toBe(0);
  });
});

describe('classifyStartFailure', () => {
  const dataDir = '/srv/data';
  const layout = layoutOf(dataDir);
  const logFile = layout.logFile;
  const HOW = 'it exited with code 1';
  const classify = (log: string, how = HOW) => classifyStartFailure(layout, 5499, log, how);
  const damaged = (quoted: string) => `The embedded PostgreSQL could not start from ${dataDir}, which is damaged (${quoted}); move it away or delete it to start with a new, empty one.`;
  const failed = (quoted: string, how = HOW) => `The embedded PostgreSQL stopped while starting (${how}): ${/[.!?]$/.test(quoted) ? quoted : `${quoted}.`}`;
  const portInUse = 'The embedded PostgreSQL could not listen on 127.0.0.1:5499: another program holds that port (another checkout\'s server?); set EMBEDDED_PG_PORT to a free port, or stop that program.';

  test('another process starting the same data dir (its lock file exists) is a lost race, not a failure', () => {
    const error = classify('2025-01-01 10:00:00.000 UTC [42] FATAL:  lock file "postmaster.pid" already exists\nHINT:  Is another postmaster (PID 41) running in data directory "/srv/data"?\n');
    expect(error).toBeInstanceOf(LostStartRace);
    expect(error).not.toBeInstanceOf(EmbeddedServerError);
    expect(classify('FATAL:  lock file "postmasterXpid" already exists')).not.toBeInstanceOf(LostStartRace);
  });

  test.each([
    ['Address already in use', 'LOG:  bind to 127.0.0.1 failed: Address already in use'],
    ['could not create any TCP/IP sockets', 'FATAL:  could not create any TCP/IP sockets'],
    ['could not bind', 'LOG:  could not bind IPv4 address "127.0.0.1": Cannot assign requested address'],
  ])('a port held by another program (%s) is port_in_use, naming the port and EMBEDDED_PG_PORT', (_, line) => {
    expectFailure(classify(`LOG:  starting PostgreSQL 17.2\n${line}\nLOG:  database system is shut down\n`), 'port_in_use', portInUse, logFile);
  });

  test('a data dir of another major version is data_dir_version, quoting the line that says which version made it', () => {
    const log = [
      '2025-01-01 10:00:00.000 UTC [42] FATAL:  database files are incompatible with server',
      '2025-01-01 10:00:00.000 UTC [42] DETAIL:  The data directory was initialized by PostgreSQL version 15, which is not compatible with this version 17.2.',
    ].join('\n');
    // The DETAIL line is quoted in PostgreSQL's words, without the log line's prefix.
    expectFailure(
      classify(log),
      'data_dir_version',
      `The embedded PostgreSQL 17 can't open ${dataDir}: The data directory was initialized by PostgreSQL version 15, which is not compatible with this version 17.2. Point VAULT_DB_DATA_DIR at another folder, or move this one away.`,
      logFile,
    );
    expectFailure(
      classify('DETAIL:  The data directory was initialized by PostgreSQL version 15, which is not compatible with this version 17.2.'),
      'data_dir_version',
      `The embedded PostgreSQL 17 can't open ${dataDir}: The data directory was initialized by PostgreSQL version 15, which is not compatible with this version 17.2. Point VAULT_DB_DATA_DIR at another folder, or move this one away.`,
      logFile,
    );
  });

  test('without the version line, the incompatibility line itself is quoted, as a sentence of its own', () => {
    expectFailure(
      classify('LOG:  starting\nFATAL:  database files are incompatible with server\nLOG:  shut down'),
      'data_dir_version',
      `The embedded PostgreSQL 17 can't open ${dataDir}: database files are incompatible with server. Point VAULT_DB_DATA_DIR at another folder, or move this one away.`,
      logFile,
    );
  });

  test.each([
    ['FATAL:  could not find the database system', 'could not find the database system'],
    ['FATAL:  pg_control is zero-length', 'pg_control is zero-length'],
    ['FATAL:  incorrect checksum in control file', 'incorrect checksum in control file'],
    ['LOG:  invalid primary checkpoint record', 'invalid primary checkpoint record'],
    ['postgres: could not access the server configuration file "/srv/data/postgresql.conf": Permission denied', 'could not access the server configuration file "/srv/data/postgresql.conf": Permission denied'],
    ['LOG:  startup process (PID 1) was terminated by signal 6: Aborted', 'startup process (PID 1) was terminated by signal 6: Aborted'],
    ['FATAL:  could not open file "global/pg_filenode.map": Permission denied', 'could not open file "global/pg_filenode.map": Permission denied'],
    ['FATAL:  could not read file "global/pg_filenode.map": read only 3 of 512 bytes', 'could not read file "global/pg_filenode.map": read only 3 of 512 bytes'],
    ['FATAL:  could not stat file "base/1": Permission denied', 'could not stat file "base/1": Permission denied'],
    ['FATAL:  could not open directory "pg_wal": Permission denied', 'could not open directory "pg_wal": Permission denied'],
    ['FATAL:  could not read directory "base": Input/output error', 'could not read directory "base": Input/output error'],
    ['FATAL:  could not stat directory "pg_tblspc": Permission denied', 'could not stat directory "pg_tblspc": Permission denied'],
    ['2025-01-01 10:00:00.000 UTC [42] PANIC:  something went wrong', 'something went wrong'],
    ['FATAL:  invalid data in file "PG_VERSION"', 'invalid data in file "PG_VERSION"'],
    ['FATAL:  "/srv/data" is not a valid data directory', '"/srv/data" is not a valid data directory'],
  ])('a damaged data dir (%s) is data_dir_damaged, quoting the line', (line, quoted) => {
    expectFailure(classify(`LOG:  starting PostgreSQL 17.2\n${line}\nLOG:  database system is shut down\n`), 'data_dir_damaged', damaged(quoted), logFile);
  });

  test('a bad setting or a missing library is not damage: start_failed, quoting PostgreSQL, with no advice to delete the data dir', () => {
    for (const [line, quoted] of [
      ['FATAL:  invalid value for parameter "max_connections": "lots"', 'invalid value for parameter "max_connections": "lots".'],
      ['FATAL:  could not access file "$libdir/pg_stat_statements": No such file or directory', 'could not access file "$libdir/pg_stat_statements": No such file or directory.'],
    ]) {
      const error = classify(`LOG:  starting PostgreSQL 17.2\n${line}\nLOG:  database system is shut down\n`);
      expectFailure(error, 'start_failed', `The embedded PostgreSQL stopped while starting (${HOW}): ${quoted}`, logFile);
      expect(error.message).not.toMatch(/damaged|delete/);
    }
  });

  test('an unknown fatal error is start_failed, quoting it and saying how the server ended', () => {
    expectFailure(classify('LOG:  starting PostgreSQL 17.2\nFATAL:  something else\nLOG:  database system is shut down\n'), 'start_failed', failed('something else'), logFile);
    expectFailure(classify('LOG:  starting\n2025-01-01 10:00:00.000 UTC [42] ERROR:  an error\nLOG:  the end'), 'start_failed', failed('an error'), logFile);
  });

  test('a quoted line that ends its sentence gets no second full stop', () => {
    expectFailure(classify('FATAL:  the data is gone.'), 'start_failed', 'The embedded PostgreSQL stopped while starting (' + HOW + '): the data is gone.', logFile);
    expectFailure(classify('FATAL:  really?'), 'start_failed', 'The embedded PostgreSQL stopped while starting (' + HOW + '): really?', logFile);
    expectFailure(classify('HINT:  try again!'), 'start_failed', 'The embedded PostgreSQL stopped while starting (' + HOW + '): try again!', logFile);
    // A full stop inside the line (a file name) does not end it.
    expectFailure(classify('FATAL:  could not load "x.so"'), 'start_failed', 'The embedded PostgreSQL stopped while starting (' + HOW + '): could not load "x.so".', logFile);
  });

  test('an empty log is start_failed, quoting how the server ended', () => {
    expectFailure(classify('', 'it exited with SIGKILL'), 'start_failed', failed('it exited with SIGKILL', 'it exited with SIGKILL'), logFile);
    expectFailure(classify('\n  \n\t\n', 'it exited with code 7'), 'start_failed', failed('it exited with code 7', 'it exited with code 7'), logFile);
  });

  test('a log with no FATAL, PANIC or ERROR line is quoted by its last line, blank lines and surrounding whitespace aside', () => {
    expectFailure(classify('LOG:  starting PostgreSQL 17.2\n   the last words   \n\n  \n'), 'start_failed', failed('the last words'), logFile);
    expectFailure(classify('first line\nLOG:  a log line\n'), 'start_failed', failed('a log line'), logFile);
  });

  test('the first FATAL line is quoted, trimmed', () => {
    expectFailure(classify('LOG:  one\n   FATAL:  the cause   \nFATAL:  a later one\nLOG:  two'), 'start_failed', failed('the cause'), logFile);
  });

  test('a leading "postgres: " is stripped, but not one inside the line', () => {
    expectFailure(classify('postgres: unknown option -- x'), 'start_failed', failed('unknown option -- x'), logFile);
    expectFailure(classify('FATAL:  role "postgres: x" is odd'), 'start_failed', failed('role "postgres: x" is odd'), logFile);
  });

  test('a port line wins over a damage line, and a lost race over everything', () => {
    const port = 'LOG:  could not bind IPv4 address "127.0.0.1": Address already in use';
    const damage = 'FATAL:  could not open file "global/pg_control": Permission denied';
    const version = 'FATAL:  database files are incompatible with server';
    const race = 'FATAL:  lock file "postmaster.pid" already exists';
    expectFailure(classify(`${damage}\n${port}`), 'port_in_use', portInUse, logFile);
    expectFailure(classify(`${damage}\n${version}\n${port}`), 'port_in_use', portInUse, logFile);
    expect((classify(`${damage}\n${version}`) as EmbeddedServerError).reason).toBe('data_dir_version');
    expect(classify(`${damage}\n${version}\n${port}\n${race}`)).toBeInstanceOf(LostStartRace);
  });
});

describe('spawnPostmaster', () => {
  const FAR = () => Date.now() + 20_000;

  test('a server that writes a ready pid file is ready: it got the flags, English messages, its own session and a private log', async () => {
    const dataDir = await aDataDir();
    const postgres = await standIn(
      [
        'printf \'%s\\0\' "$@" > "$2/args"',
        'printf \'%s|%s\' "$LC_MESSAGES" "$VAULT_DB_TEST_MARK" > "$2/env"',
        'echo "to stdout"',
        'echo "to stderr" >&2',
        writePidFile('$$', 'ready   '),
        'exec sleep 30',
      ].join('\n'),
    );
    const layout = layoutOf(dataDir, postgres);
    const saved = { LC_MESSAGES: process.env.LC_MESSAGES, VAULT_DB_TEST_MARK: process.env.VAULT_DB_TEST_MARK };
    process.env.LC_MESSAGES = 'de_DE.UTF-8';
    process.env.VAULT_DB_TEST_MARK = 'inherited';
    let postmaster: StartedPostmaster;
    try {
      postmaster = await spawnOf(layout, 5499, FAR());
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
    await expect(postmaster.ready).resolves.toBeUndefined();

    const pid = postmaster.child.pid!;
    expect((await readFile(path.join(dataDir, 'args'), 'utf8')).split('\0').slice(0, -1)).toEqual(serverArguments(layout, 5499));
    expect(await readFile(path.join(dataDir, 'env'), 'utf8')).toBe('C|inherited');
    expect(await readFile(layout.logFile, 'utf8')).toBe('to stdout\nto stderr\n');
    expect((await stat(layout.logFile)).mode & 0o777).toBe(0o600);
    expect(existsSync(`${layout.logFile}.1`), 'no earlier log to keep').toBe(false);
    // /proc/<pid>/stat: pid (comm) state ppid pgrp session ...
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
    expect(Number(fields[3]), 'the session is its own').toBe(pid);
    expect(Number(fields[2]), 'so is the process group').toBe(pid);
    expect(postmaster.child.exitCode).toBeNull();
  });

  test("the previous run's log is kept as server.log.1, and the new one is read from its start", async () => {
    const dataDir = await aDataDir();
    const layout = layoutOf(dataDir, await standIn('echo "new run"\necho "LOG:  a"\necho "LOG:  b"\nexit 3'));
    await writeFile(layout.logFile, 'FATAL:  lock file "postmaster.pid" already exists\n', { mode: 0o644 });
    const error = await failureOf(await spawnOf(layout, 5499, FAR()));
    expectFailure(error, 'start_failed', 'The embedded PostgreSQL stopped while starting (it exited with code 3): b.', layout.logFile);
    expect(await readFile(`${layout.logFile}.1`, 'utf8')).toBe('FATAL:  lock file "postmaster.pid" already exists\n');
    expect(await readFile(layout.logFile, 'utf8')).toBe('new run\nLOG:  a\nLOG:  b\n');
    expect((await stat(layout.logFile)).mode & 0o777).toBe(0o600);
  });

  test('a server that never says ready is interrupted at the deadline: start_timeout', async () => {
    const dataDir = await aDataDir();
    const postgres = await standIn(
      [
        'trap \'echo interrupted > "$2/interrupted"; exit 0\' INT',
        writePidFile('$$', 'starting'),
        'while :; do sleep 0.05; done',
      ].join('\n'),
    );
    const layout = layoutOf(dataDir, postgres);
    const deadline = Date.now() + 1000;
    const error = await failureOf(await spawnOf(layout, 5499, deadline));
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    expectFailure(
      error,
      'start_timeout',
      `The embedded PostgreSQL did not become ready in time (data dir ${dataDir}); the machine may be overloaded: run again, or read the log.`,
      layout.logFile,
    );
    await waitUntil(() => existsSync(path.join(dataDir, 'interrupted')), 'the server got SIGINT', 5000);
  });

  test("a ready pid file of another process is not this server's: the start times out", async () => {
    const dataDir = await aDataDir();
    const layout = layoutOf(dataDir, await standIn(`${writePidFile('$PPID', 'ready   ')}\nexec sleep 30`));
    const error = await failureOf(await spawnOf(layout, 5499, Date.now() + 1000));
    expect((error as EmbeddedServerError).reason).toBe('start_timeout');
  });

  test('a server that finds its port taken is port_in_use, read from the whole log', async () => {
    const dataDir = await aDataDir();
    const postgres = await standIn(
      [
        'echo "LOG:  starting PostgreSQL 17.2"',
        'echo "FATAL:  could not bind IPv4 address \\"127.0.0.1\\": Address already in use" >&2',
        'echo "HINT:  Is another postmaster already running on port $4?" >&2',
        'echo "LOG:  database system is shut down"',
        'exit 1',
      ].join('\n'),
    );
    const layout = layoutOf(dataDir, postgres);
    const error = await failureOf(await spawnOf(layout, 54321, FAR()));
    expectFailure(
      error,
      'port_in_use',
      "The embedded PostgreSQL could not listen on 127.0.0.1:54321: another program holds that port (another checkout's server?); set EMBEDDED_PG_PORT to a free port, or stop that program.",
      layout.logFile,
    );
  });

  test("a server that finds another's lock file lost the race", async () => {
    const dataDir = await aDataDir();
    const layout = layoutOf(dataDir, await standIn('echo "LOG:  starting"\necho "FATAL:  lock file \\"postmaster.pid\\" already exists" >&2\nexit 1'));
    expect(await failureOf(await spawnOf(layout, 5499, FAR()))).toBeInstanceOf(LostStartRace);
  });

  test('a server program that is missing is start_failed: it could not be run', async () => {
    const dataDir = await aDataDir();
    const missing = path.join(standIns.folder(), 'bin', 'no-such-postgres');
    const layout = layoutOf(dataDir, missing);
    const how = `it could not be run: spawn ${missing} ENOENT`;
    expectFailure(await failureOf(await spawnOf(layout, 5499, FAR())), 'start_failed', `The embedded PostgreSQL stopped while starting (${how}): ${how}.`, layout.logFile);
  });

  test('a server that ends silently is start_failed, naming its signal or exit code', async () => {
    const killed = layoutOf(await aDataDir(), await standIn('kill -TERM $$\nsleep 5'));
    expectFailure(
      await failureOf(await spawnOf(killed, 5499, FAR())),
      'start_failed',
      'The embedded PostgreSQL stopped while starting (it exited with SIGTERM): it exited with SIGTERM.',
      killed.logFile,
    );
    const exited = layoutOf(await aDataDir(), await standIn('exit 3'));
    expectFailure(
      await failureOf(await spawnOf(exited, 5499, FAR())),
      'start_failed',
      'The embedded PostgreSQL stopped while starting (it exited with code 3): it exited with code 3.',
      exited.logFile,
    );
  });

  test.skipIf(!isRoot)('as root, the server runs as the user switched to, and as the current user otherwise', async () => {
    const postgres = postgresUser();
    const script = await standIn(`id -u > "$2/uid"\n${writePidFile('$$', 'ready   ')}\nexec sleep 30`);

    const dataDir = await aDataDir();
    await chown(dataDir, postgres.uid, postgres.gid);
    const switched = await spawnOf(layoutOf(dataDir, script, postgres), 5499, FAR());
    await switched.ready;
    expect((await readFile(path.join(dataDir, 'uid'), 'utf8')).trim()).toBe(String(postgres.uid));

    const other = await aDataDir();
    const notSwitched = await spawnOf(layoutOf(other, script, { ...postgres, switched: false }), 5499, FAR());
    await notSwitched.ready;
    expect((await readFile(path.join(other, 'uid'), 'utf8')).trim()).toBe('0');
  });
});

/**
 * A server on 127.0.0.1 that speaks just enough of PostgreSQL's protocol: it refuses every login
 * with `refuse` (an SQLSTATE and a message), or takes it and answers any query with `rows` (one
 * text column, `data_directory`).
 */
async function fakeServer(answer: { refuse: [string, string] } | { rows: string[] }): Promise<{ port: number; close: () => Promise<void> }> {
  const message = (type: string, body: Buffer) => {
    const head = Buffer.alloc(5);
    head.write(type, 0, 'latin1');
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  };
  const cstring = (s: string) => Buffer.from(`${s}\0`, 'utf8');
  const int32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  };
  const int16 = (n: number) => {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    return b;
  };
  const readyForQuery = message('Z', Buffer.from('I'));
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let startedUp = false;
    socket.on('data', (chunk: Buffer) => {
      if (!startedUp) {
        startedUp = true;
        if ('refuse' in answer) {
          const [code, text] = answer.refuse;
          socket.end(message('E', Buffer.concat([Buffer.from('S'), cstring('FATAL'), Buffer.from('C'), cstring(code), Buffer.from('M'), cstring(text), Buffer.from([0])])));
        } else {
          socket.write(Buffer.concat([message('R', int32(0)), readyForQuery]));
        }
        return;
      }
      if (chunk[0] === 'Q'.charCodeAt(0) && 'rows' in answer) {
        const field = Buffer.concat([cstring('data_directory'), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)]);
        const parts = [message('T', Buffer.concat([int16(1), field]))];
        for (const row of answer.rows) {
          const value = Buffer.from(row, 'utf8');
          parts.push(message('D', Buffer.concat([int16(1), int32(value.length), value])));
        }
        parts.push(message('C', cstring('SHOW')), readyForQuery);
        socket.write(Buffer.concat(parts));
      } else if (chunk[0] === 'X'.charCodeAt(0)) {
        socket.end();
      }
    });
  });
  const port = await freePort(PORTS);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('verifyServer', () => {
  test('no server on the port is unreachable', async () => {
    const port = await freePort(PORTS);
    const result = await verifyServer(layoutOf(await aDataDir()), port, 'secret');
    expect(result).toEqual({ ok: false, why: 'unreachable', detail: `connect ECONNREFUSED 127.0.0.1:${port}` });
  });

  test.each([
    ['28P01', 'password authentication failed for user "postgres"'],
    ['28000', 'role "postgres" does not exist'],
  ])('a server that refuses the login (%s) is login_rejected, with its message', async (code, text) => {
    const server = await fakeServer({ refuse: [code, text] });
    try {
      expect(await verifyServer(layoutOf(await aDataDir()), server.port, 'secret')).toEqual({ ok: false, why: 'login_rejected', detail: text });
    } finally {
      await server.close();
    }
  });

  test('a server that fails the login for another reason is unreachable, with its message', async () => {
    const server = await fakeServer({ refuse: ['57P03', 'the database system is starting up'] });
    try {
      expect(await verifyServer(layoutOf(await aDataDir()), server.port, 'secret')).toEqual({ ok: false, why: 'unreachable', detail: 'the database system is starting up' });
    } finally {
      await server.close();
    }
  });

  test("a server that serves this data dir (by any path to it) is ours; one that serves another, or won't say, is not", async () => {
    const dataDir = await aDataDir();
    const link = `${dataDir}-link`;
    await symlink(dataDir, link);
    const ours = await fakeServer({ rows: [link] });
    const theirs = await fakeServer({ rows: [path.join(standIns.folder(), 'elsewhere')] });
    const silent = await fakeServer({ rows: [] });
    try {
      expect(await verifyServer(layoutOf(dataDir), ours.port, 'secret')).toEqual({ ok: true });
      expect(await verifyServer(layoutOf(link), ours.port, 'secret')).toEqual({ ok: true });
      expect(await verifyServer(layoutOf(dataDir), theirs.port, 'secret')).toEqual({ ok: false, why: 'other_data_dir', detail: path.join(standIns.folder(), 'elsewhere') });
      expect(await verifyServer(layoutOf(dataDir), silent.port, 'secret')).toEqual({ ok: false, why: 'other_data_dir', detail: '' });
    } finally {
      await Promise.all([ours.close(), theirs.close(), silent.close()]);
    }
  });

  // The machine's own PostgreSQL (trust logins on 127.0.0.1) plays a server of another checkout.
  const machineServer = /^postgres(ql)?:\/\/root@127\.0\.0\.1:5432\//.test(process.env.DATABASE_URL ?? '');
  describe.skipIf(!machineServer)("the machine's server", () => {
    let served: string | null = null;
    beforeAll(async () => {
      // Logs in as postgres, as verifyServer does; null when that role can't log in here.
      served = await queryOne<{ data_directory: string }>('postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable', 'show data_directory').then(
        (row) => row.data_directory,
        () => null,
      );
    });

    test('serving another data dir is other_data_dir, naming the one it serves', async (ctx) => {
      if (served === null) ctx.skip();
      expect(await verifyServer(layoutOf(await aDataDir()), 5432, 'any password')).toEqual({ ok: false, why: 'other_data_dir', detail: served });
    });

    test('serving the data dir of the layout is ours', async (ctx) => {
      if (served === null) ctx.skip();
      expect(await verifyServer(layoutOf(served!), 5432, 'any password')).toEqual({ ok: true });
    });
  });
});
