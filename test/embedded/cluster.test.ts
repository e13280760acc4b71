/**
 * The data dir (src/embedded/cluster.ts) and where the server's files are (src/embedded/layout.ts),
 * without a PostgreSQL cluster: data dirs are plain folders in a scratch folder, and initdb is a
 * stand-in shell script that reads its arguments as the real one does, records what it was given
 * and what it could see (the password file, its mode and owner, the user it ran as) and makes a
 * folder with a PG_VERSION. A new data dir appears only complete, with its private password, and
 * no half-made build or password file is left behind, whether initdb fails, another process wins
 * the race, or an earlier builder crashed.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from 'vitest';
import { createCluster, inspectCluster, readPassword, SUPERUSER } from '../../src/embedded/cluster.js';
import { EmbeddedServerError } from '../../src/embedded/errors.js';
import { type Layout, metaPaths, resolveLayout } from '../../src/embedded/layout.js';
import { currentProcess, formatProcessId } from '../../src/embedded/process-identity.js';
import { type ServerUser, serverUser } from '../../src/embedded/server-user.js';
import { useStandIns } from './stand-ins.js';
import { rejectionOf } from '../support/rejection.js';

const standIns = useStandIns();
const run = promisify(execFile);
const asRoot = process.getuid?.() === 0;
const me: ServerUser = { name: 'me', uid: process.getuid!(), gid: process.getgid!(), switched: false };

/** A fresh folder in the scratch folder, for one test's files. */
let count = 0;
async function aFolder(): Promise<string> {
  const folder = path.join(standIns.folder(), `case-${++count}`);
  await mkdir(folder);
  return folder;
}

/** A layout of `dataDir` as resolveLayout would make it, with `initdb` as its initdb. */
function aLayout(dataDir: string, initdb: string, user: ServerUser = me): Layout {
  return {
    requestedDir: dataDir,
    dataDir,
    ...metaPaths(dataDir),
    user,
    binaries: { nativeDir: path.dirname(path.dirname(initdb)), postgres: path.join(path.dirname(initdb), 'postgres'), initdb },
    major: 17,
  };
}

/** What the stand-in initdb recorded: its arguments, and `key value` facts. */
interface InitdbRun {
  args: string[];
  facts: Record<string, string>;
}

/**
 * A stand-in initdb in `folder`/bin that records its arguments to `folder`/record (writable by
 * anyone, for the switched user) and then runs `body`, with $pgdata and $pwfile set from them.
 */
async function anInitdb(folder: string, body: string): Promise<{ initdb: string; record: () => Promise<InitdbRun> }> {
  await mkdir(path.join(folder, 'bin'));
  const initdb = path.join(folder, 'bin', 'initdb');
  const record = path.join(folder, 'record');
  await writeFile(record, '');
  await chmod(record, 0o666);
  const script = [
    '#!/bin/sh',
    `record='${record}'`,
    'for arg in "$@"; do',
    '  printf "arg %s\\n" "$arg" >> "$record"',
    '  case "$arg" in',
    '    --pgdata=*) pgdata="${arg#--pgdata=}" ;;',
    '    --pwfile=*) pwfile="${arg#--pwfile=}" ;;',
    '  esac',
    'done',
    body,
    '',
  ].join('\n');
  await writeFile(initdb, script, { mode: 0o755 });
  return {
    initdb,
    record: async () => {
      const lines = (await readFile(record, 'utf8')).split('\n').filter(Boolean);
      const split = (line: string) => [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)] as const;
      return {
        args: lines.filter((l) => l.startsWith('arg ')).map((l) => split(l)[1]),
        facts: Object.fromEntries(lines.filter((l) => !l.startsWith('arg ')).map(split)),
      };
    },
  };
}

/** The body of an initdb that works: records what it sees, then makes $pgdata with PG_VERSION 17. */
const WORKING_INITDB = [
  '{',
  '  echo "LC_ALL $LC_ALL"',
  '  echo "PATH $PATH"',
  '  echo "uid $(id -u)"',
  '  echo "gid $(id -g)"',
  '  echo "build $(stat -c \'%a %u:%g\' "$(dirname "$pwfile")")"',
  '  echo "pwfile $(stat -c \'%a %u:%g\' "$pwfile")"',
  '  echo "password $(cat "$pwfile")"',
  '} >> "$record"',
  'mkdir "$pgdata" && echo 17 > "$pgdata/PG_VERSION"',
].join('\n');

/** The build folders (`<data dir>.init-*`) next to `dataDir`. */
async function buildsOf(dataDir: string): Promise<string[]> {
  const prefix = `${path.basename(dataDir)}.init-`;
  return (await readdir(path.dirname(dataDir))).filter((name) => name.startsWith(prefix));
}

/** The EmbeddedServerError `promise` rejects with (the test fails when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<EmbeddedServerError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(EmbeddedServerError);
  return error as EmbeddedServerError;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('metaPaths', () => {
  test("names the package's files in the vault-db folder of the data dir", () => {
    expect(metaPaths('/srv/data')).toEqual({
      metaDir: '/srv/data/vault-db',
      passwordFile: '/srv/data/vault-db/password',
      logFile: '/srv/data/vault-db/server.log',
      watchdogLogFile: '/srv/data/vault-db/watchdog.log',
      leasesDir: '/srv/data/vault-db/users',
      stopMarker: '/srv/data/vault-db/stopping',
      watchdogFile: '/srv/data/vault-db/watchdog',
    });
  });
});

describe('inspectCluster', () => {
  const noInitdb = '/nonexistent/bin/initdb';

  test('a data dir that does not exist is absent', async () => {
    const dataDir = path.join(await aFolder(), 'data');
    expect(await inspectCluster(aLayout(dataDir, noInitdb))).toBe('absent');
    expect(existsSync(dataDir)).toBe(false);
  });

  test('an empty folder is absent', async () => {
    const dataDir = path.join(await aFolder(), 'data');
    await mkdir(dataDir);
    expect(await inspectCluster(aLayout(dataDir, noInitdb))).toBe('absent');
  });

  test('a data dir path that cannot be read as a folder is an error as it is, not absent', async () => {
    const dataDir = path.join(await aFolder(), 'data');
    await writeFile(dataDir, 'a file, not a folder\n');
    await expect(inspectCluster(aLayout(dataDir, noInitdb))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  test('a non-empty folder without PG_VERSION is not a data dir', async () => {
    const dataDir = path.join(await aFolder(), 'data');
    await mkdir(dataDir);
    await writeFile(path.join(dataDir, 'notes.txt'), 'mine\n');
    const error = await rejection(inspectCluster(aLayout(dataDir, noInitdb)));
    expect(error.reason).toBe('not_a_data_dir');
    expect(error.message).toBe(
      `${dataDir} is not empty but is no PostgreSQL data dir (it has no PG_VERSION); point VAULT_DB_DATA_DIR at a new or empty folder, or move this one away.`,
    );
  });

  test('a data dir of another major version names both versions and how to carry the data over', async () => {
    const dataDir = path.join(await aFolder(), 'data');
    await mkdir(path.join(dataDir, 'vault-db'), { recursive: true });
    await writeFile(path.join(dataDir, 'PG_VERSION'), '15\n');
    await writeFile(path.join(dataDir, 'vault-db', 'password'), 'secret\n');
    const error = await rejection(inspectCluster(aLayout(dataDir, noInitdb)));
    expect(error.reason).toBe('data_dir_version');
    expect(error.message).toBe(
      `${dataDir} was made by PostgreSQL 15, but the embedded server is PostgreSQL 17, which can't open it; point VAULT_DB_DATA_DIR at another folder, or move this one away (its data can be carried over with PostgreSQL 15's pg_dump).`,
    );
  });

  test('a data dir without a password file, or with an empty one, has no private password', async () => {
    const dataDir = path.join(await aFolder(), 'data');
    await mkdir(dataDir);
    await writeFile(path.join(dataDir, 'PG_VERSION'), '17\n');
    const layout = aLayout(dataDir, noInitdb);
    const expected = `${dataDir} has no private password file (${dataDir}/vault-db/password): it was made by an older vault-db, whose server anyone on this machine could log in to with a fixed password; delete the folder (rm -rf ${dataDir}) and run again to get a new one with its own password.`;

    const missing = await rejection(inspectCluster(layout));
    expect(missing.reason).toBe('no_private_password');
    expect(missing.message).toBe(expected);

    await mkdir(layout.metaDir);
    await writeFile(layout.passwordFile, '  \n\t\n');
    const blank = await rejection(inspectCluster(layout));
    expect(blank.reason).toBe('no_private_password');
    expect(blank.message).toBe(expected);
  });

  test('a data dir of this version with its password is ready', async () => {
    const dataDir = path.join(await aFolder(), 'data');
    await mkdir(path.join(dataDir, 'vault-db'), { recursive: true });
    await writeFile(path.join(dataDir, 'PG_VERSION'), '17\n');
    await writeFile(path.join(dataDir, 'vault-db', 'password'), 'secret\n');
    expect(await inspectCluster(aLayout(dataDir, noInitdb))).toBe('ready');
  });
});

describe('readPassword', () => {
  test('reads the password without the white space around it', async () => {
    const dataDir = path.join(await aFolder(), 'data');
    const layout = aLayout(dataDir, '/nonexistent/bin/initdb');
    await mkdir(layout.metaDir, { recursive: true });
    await writeFile(layout.passwordFile, '  s3cr3t-_x \n');
    expect(await readPassword(layout)).toBe('s3cr3t-_x');
  });
});

describe('createCluster', () => {
  test('initdb makes the data dir in a private build folder, which is renamed into place with a new random password', async () => {
    const folder = await aFolder();
    const { initdb, record } = await anInitdb(folder, WORKING_INITDB);
    // Parent folders that don't exist yet are made.
    const dataDir = path.join(folder, 'not', 'yet', 'data');
    const layout = aLayout(dataDir, initdb);
    await createCluster(layout);

    const { args, facts } = await record();
    const pgdata = (args[0] ?? '').replace(/^--pgdata=/, '');
    const build = path.dirname(pgdata);
    expect(build).toMatch(new RegExp(`^${escapeRegExp(dataDir)}\\.init-${formatProcessId(currentProcess())}-[0-9a-f]{8}$`));
    expect(args).toEqual([`--pgdata=${build}/pgdata`, `--username=${SUPERUSER}`, `--pwfile=${build}/pwfile`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C']);
    expect(SUPERUSER).toBe('postgres');
    // initdb runs in the C locale, with the rest of this process's environment.
    expect(facts.LC_ALL).toBe('C');
    expect(facts.PATH).toBe(process.env.PATH);
    expect(facts.uid).toBe(String(process.getuid!()));
    // The build folder and the password file were private while initdb ran.
    expect(facts.build).toBe(`700 ${me.uid}:${me.gid}`);
    expect(facts.pwfile).toBe(`600 ${me.uid}:${me.gid}`);

    // The data dir is in place, with the password initdb was given, in a private file.
    expect(await readFile(path.join(dataDir, 'PG_VERSION'), 'utf8')).toBe('17\n');
    const password = facts.password ?? '';
    expect(password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await readFile(layout.passwordFile, 'utf8')).toBe(`${password}\n`);
    expect((await stat(layout.passwordFile)).mode & 0o777).toBe(0o600);
    expect((await stat(layout.metaDir)).mode & 0o777).toBe(0o700);
    expect(await readdir(layout.metaDir)).toEqual(['password']);
    // The initdb password file was not in the data dir, and no build folder is left.
    expect(build.startsWith(`${dataDir}/`)).toBe(false);
    expect(await readdir(dataDir)).toEqual(['PG_VERSION', 'vault-db']);
    expect(await buildsOf(dataDir)).toEqual([]);
    expect(await inspectCluster(layout)).toBe('ready');
    expect(await readPassword(layout)).toBe(password);
  });

  test('each data dir gets its own password', async () => {
    const folder = await aFolder();
    const { initdb } = await anInitdb(folder, WORKING_INITDB);
    const first = aLayout(path.join(folder, 'first'), initdb);
    const second = aLayout(path.join(folder, 'second'), initdb);
    await createCluster(first);
    await createCluster(second);
    expect(await readPassword(first)).not.toBe(await readPassword(second));
  });

  test('a failing initdb is initdb_failed, quoting its error line, and leaves neither a data dir nor a build', async () => {
    const folder = await aFolder();
    const { initdb } = await anInitdb(
      folder,
      [
        'echo "The files belonging to this database system will be owned by user \\"me\\"."',
        'echo "initdb: warning: something first" >&2',
        'echo "   initdb: error: could not create directory \\"x\\": Permission denied  " >&2',
        'echo "initdb: hint: check the folder" >&2',
        'exit 1',
      ].join('\n'),
    );
    const dataDir = path.join(folder, 'data');
    const error = await rejection(createCluster(aLayout(dataDir, initdb)));
    expect(error.reason).toBe('initdb_failed');
    expect(error.message).toBe(`initdb could not make the data dir ${dataDir}: initdb: error: could not create directory "x": Permission denied`);
    expect(error.logFile).toBeUndefined();
    expect(error.cause).toMatchObject({ code: 1 });
    expect(existsSync(dataDir)).toBe(false);
    expect(await buildsOf(dataDir)).toEqual([]);
  });

  test('a failing initdb without an error line is quoted by its last line', async () => {
    const folder = await aFolder();
    const { initdb } = await anInitdb(folder, ['echo "first problem" >&2', 'echo "  last problem  " >&2', 'echo >&2', 'exit 3'].join('\n'));
    const dataDir = path.join(folder, 'data');
    const error = await rejection(createCluster(aLayout(dataDir, initdb)));
    expect(error.reason).toBe('initdb_failed');
    expect(error.message).toBe(`initdb could not make the data dir ${dataDir}: last problem`);
    expect(existsSync(dataDir)).toBe(false);
    expect(await buildsOf(dataDir)).toEqual([]);
  });

  test('a failing initdb that prints nothing is quoted by the error of running it', async () => {
    const folder = await aFolder();
    const { initdb } = await anInitdb(folder, 'exit 2');
    const dataDir = path.join(folder, 'data');
    const error = await rejection(createCluster(aLayout(dataDir, initdb)));
    expect(error.reason).toBe('initdb_failed');
    const cause = error.cause as Error & { code?: number };
    expect(cause.code).toBe(2);
    expect(cause.message.startsWith(`Command failed: ${initdb} --pgdata=`)).toBe(true);
    expect(error.message).toBe(`initdb could not make the data dir ${dataDir}: ${cause.message}`);
    expect(existsSync(dataDir)).toBe(false);
    expect(await buildsOf(dataDir)).toEqual([]);
  });

  test("when another process's data dir got there first, it is kept as it is and ours is dropped quietly", async () => {
    const folder = await aFolder();
    const dataDir = path.join(folder, 'data');
    // The other process finishes while our initdb runs.
    const { initdb } = await anInitdb(folder, [WORKING_INITDB, `mkdir '${dataDir}' && echo other > '${dataDir}/PG_VERSION'`].join('\n'));
    await createCluster(aLayout(dataDir, initdb));
    expect(await readdir(dataDir)).toEqual(['PG_VERSION']);
    expect(await readFile(path.join(dataDir, 'PG_VERSION'), 'utf8')).toBe('other\n');
    expect(await buildsOf(dataDir)).toEqual([]);
  });

  test('a data dir that cannot be put in place for another reason is an error, and the build is still dropped', async () => {
    const folder = await aFolder();
    const { initdb } = await anInitdb(folder, WORKING_INITDB);
    const dataDir = path.join(folder, 'data');
    await writeFile(dataDir, 'a file in the way\n');
    await expect(createCluster(aLayout(dataDir, initdb))).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(await readFile(dataDir, 'utf8')).toBe('a file in the way\n');
    expect(await buildsOf(dataDir)).toEqual([]);
  });

  test("builds whose builder has ended are removed; a running builder's, another data dir's and unknown ones are kept", async () => {
    const folder = await aFolder();
    const { initdb } = await anInitdb(folder, WORKING_INITDB);
    const parent = path.join(folder, 'builds');
    const dataDir = path.join(parent, 'data-a');
    const ended = formatProcessId(await standIns.anEndedProcess());
    const abandoned = `data-a.init-${ended}-0badf00d`;
    const running = `data-a.init-${formatProcessId(currentProcess())}-cafef00d`;
    const anotherDataDirs = `data-b.init-${ended}-0badf00d`;
    const unknown = 'data-a.init-someone-0badf00d';
    for (const name of [abandoned, running, anotherDataDirs, unknown]) {
      // Half-made: initdb got as far as a file or two.
      await mkdir(path.join(parent, name, 'pgdata'), { recursive: true });
      await writeFile(path.join(parent, name, 'pgdata', 'PG_VERSION'), '17\n');
    }
    await createCluster(aLayout(dataDir, initdb));
    expect((await readdir(parent)).sort()).toEqual([anotherDataDirs, 'data-a', running, unknown].sort());
    expect(await readFile(path.join(parent, running, 'pgdata', 'PG_VERSION'), 'utf8')).toBe('17\n');
  });

  test.skipIf(!asRoot)('as root, initdb runs as the server user, which owns the build folder and the password file', async () => {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]).then((r) => r.map((o) => Number(o.stdout.trim())));
    const postgres: ServerUser = { name: 'postgres', uid: uid!, gid: gid!, switched: true };
    const folder = await aFolder();
    const { initdb, record } = await anInitdb(folder, WORKING_INITDB);
    const dataDir = path.join(folder, 'data');
    const layout = aLayout(dataDir, initdb, postgres);
    await createCluster(layout);
    const { facts } = await record();
    expect(facts.uid).toBe(String(uid));
    expect(facts.gid).toBe(String(gid));
    expect(facts.build).toBe(`700 ${uid}:${gid}`);
    expect(facts.pwfile).toBe(`600 ${uid}:${gid}`);
    expect(facts.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await readPassword(layout)).toBe(facts.password);
    expect(await inspectCluster(layout)).toBe('ready');
    expect(await buildsOf(dataDir)).toEqual([]);
  });
});

describe('resolveLayout', () => {
  let fakeNative: string;

  beforeAll(async () => {
    fakeNative = path.join(standIns.folder(), 'native');
    await mkdir(path.join(fakeNative, 'bin'), { recursive: true });
    await writeFile(path.join(fakeNative, 'bin', 'postgres'), '#!/bin/sh\necho "postgres (PostgreSQL) 16.2"\n', { mode: 0o755 });
    await writeFile(path.join(fakeNative, 'bin', 'initdb'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  });

  test('a data dir the server user can reach is used where it was asked for, resolved to an absolute path', async () => {
    const wanted = path.join(standIns.folder(), 'reachable', 'deeper', 'data');
    const layout = await resolveLayout({ dataDir: path.relative(process.cwd(), wanted) });
    expect(layout.requestedDir).toBe(wanted);
    expect(layout.dataDir).toBe(wanted);
    expect(layout).not.toHaveProperty('movedBecause');
    expect(layout).toMatchObject(metaPaths(wanted));
    expect(layout.user).toEqual(await serverUser());
    expect(layout.major).toBe(17);
    expect(layout.binaries.postgres).toBe(path.join(layout.binaries.nativeDir, 'bin', 'postgres'));
    expect(layout.binaries.initdb).toBe(path.join(layout.binaries.nativeDir, 'bin', 'initdb'));
    expect(existsSync(wanted)).toBe(false);
  });

  test.skipIf(!asRoot)("as root, the data dir's parent folders are made, so that the server user's reach can be checked", async () => {
    const wanted = path.join(standIns.folder(), 'made', 'for', 'it', 'data');
    const layout = await resolveLayout({ dataDir: wanted, nativeDir: fakeNative });
    expect((await stat(path.dirname(wanted))).isDirectory()).toBe(true);
    expect(layout.dataDir).toBe(wanted);
    expect(layout).not.toHaveProperty('movedBecause');
  });

  test('nativeDir names the binaries, whose major version is read from postgres --version', async () => {
    const layout = await resolveLayout({ dataDir: path.join(standIns.folder(), 'with-native', 'data'), nativeDir: fakeNative });
    expect(layout.binaries).toEqual({ nativeDir: fakeNative, postgres: path.join(fakeNative, 'bin', 'postgres'), initdb: path.join(fakeNative, 'bin', 'initdb') });
    expect(layout.major).toBe(16);
  });

  test.skipIf(!asRoot)("as root, a data dir in a folder the server user can't reach moves to the shared folder, saying why", async () => {
    const privateFolder = path.join(standIns.folder(), 'private');
    await mkdir(privateFolder, { mode: 0o700 });
    await chmod(privateFolder, 0o700);
    const wanted = path.join(privateFolder, 'data');
    const layout = await resolveLayout({ dataDir: wanted, nativeDir: fakeNative });
    const id = createHash('sha256').update(wanted).digest('hex').slice(0, 16);
    const moved = `/var/tmp/vault-db-embedded/data-${id}`;
    expect(layout.requestedDir).toBe(wanted);
    expect(layout.dataDir).toBe(moved);
    expect(layout.movedBecause).toBe(
      `the "postgres" user that runs the server can't reach ${privateFolder} (a folder above it is private, and vault-db never opens one up)`,
    );
    expect(layout).toMatchObject(metaPaths(moved));
    expect(layout.user).toMatchObject({ name: 'postgres', switched: true });
    // Only where it is decided; the data dir itself is made when the server first starts.
    const made = existsSync(moved);
    if (made) await rm(moved, { recursive: true, force: true });
    expect(made).toBe(false);
  });
});
