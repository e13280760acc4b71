/**
 * The embedded server's small building blocks, without a cluster: its error (errors.ts), private
 * files written atomically (private-file.ts), the root-owned shared folder (shared-folder.ts) and
 * the OS user the server runs as (server-user.ts). Everything runs on real files in a scratch
 * folder and real processes: the kernel answers what the `postgres` user may reach, a child
 * started as `nobody` plays a normal user, and the user-creating commands are stand-in scripts
 * put first on PATH.
 */
import { execFile } from 'node:child_process';
import { watch } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from 'vitest';
import { EmbeddedServerError } from '../../src/embedded/errors.js';
import { writePrivateFile } from '../../src/embedded/private-file.js';
import { isRoot, ROOT_SERVER_USER, serverUser, type ServerUser, userCan } from '../../src/embedded/server-user.js';
import { assertOnlyRootWrites, SHARED_FOLDER_NAME, sharedRootFolder } from '../../src/embedded/shared-folder.js';
import { ConfigurationError } from '../../src/errors.js';
import { useStandIns } from './stand-ins.js';
import { rejectionOf } from '../support/rejection.js';
import { ROOT } from './support.js';

const run = promisify(execFile);
const standIns = useStandIns();
/** The postgres OS user, as `id` reports it (as root only). */
let postgresUser: ServerUser;

beforeAll(async () => {
  if (!isRoot()) return;
  const [uid, gid] = await Promise.all(['-u', '-g'].map(async (flag) => Number((await run('id', [flag, 'postgres'])).stdout.trim())));
  postgresUser = { name: 'postgres', uid: uid!, gid: gid!, switched: true };
});

/** A new folder in the scratch folder, with `mode`. */
async function aFolder(name: string, mode = 0o755): Promise<string> {
  const dir = path.join(standIns.folder(), `${name}-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir);
  await chmod(dir, mode);
  return dir;
}

/** What `promise` rejected with (fails the test if it resolved). */
async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string; syscall?: string; reason?: string; logFile?: string }> {
  return (await rejectionOf(promise)) as Error & { code?: string; syscall?: string; reason?: string; logFile?: string };
}

/** The files this process holds open (what /proc/self/fd links to). */
async function openFiles(): Promise<string[]> {
  const fds = await readdir('/proc/self/fd');
  return (await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')))).filter(Boolean);
}

/** Runs `code` (an ES module body) in a new Node process with tsx, as `as` when given, and returns its stdout. */
async function inNode(code: string, as?: { uid: number; gid: number }): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, ...as });
  return stdout;
}
const moduleUrl = (file: string) => new URL(`../../src/embedded/${file}`, import.meta.url).href;

describe('EmbeddedServerError', () => {
  test('is a ConfigurationError with the reason and the message given', () => {
    const error = new EmbeddedServerError('port_in_use', 'Port 5499 is taken.');
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('configuration');
    expect(error.name).toBe('EmbeddedServerError');
    expect(error.reason).toBe('port_in_use');
    expect(error.message).toBe('Port 5499 is taken.');
    expect(error.logFile).toBeUndefined();
    expect(error.cause).toBeUndefined();
  });

  test('with a log file, the message ends with " Server log: <file>", and the file and cause are kept', () => {
    const cause = new Error('exit 1');
    const error = new EmbeddedServerError('start_failed', 'PostgreSQL exited.', '/data/vault-db/server.log', { cause });
    expect(error.message).toBe('PostgreSQL exited. Server log: /data/vault-db/server.log');
    expect(error.logFile).toBe('/data/vault-db/server.log');
    expect(error.reason).toBe('start_failed');
    expect(error.cause).toBe(cause);
    expect(new EmbeddedServerError('initdb_failed', 'initdb failed.', undefined, { cause }).message).toBe('initdb failed.');
  });
});

describe('writePrivateFile', () => {
  test('writes exactly the content, to a file only its owner may read or write (mode 0600)', async () => {
    const file = path.join(await aFolder('private'), 'password');
    await writePrivateFile(file, 'pa55 wörd\nline two');
    expect(await readFile(file, 'utf8')).toBe('pa55 wörd\nline two');
    const info = await stat(file);
    expect(info.mode & 0o7777).toBe(0o600);
    expect([info.uid, info.gid]).toEqual([process.getuid?.(), process.getgid?.()]);
  });

  test('writes a new file in the same folder, hidden, and leaves no partial file and no open descriptor', async () => {
    const folder = await aFolder('partials');
    const file = path.join(folder, 'secret');
    const seen = new Set<string>();
    const watcher = watch(folder, (_event, name) => name && seen.add(name));
    try {
      await writePrivateFile(file, 'one');
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      watcher.close();
    }
    const partials = [...seen].filter((name) => name !== 'secret');
    expect(partials).toHaveLength(1);
    expect(partials[0]).toMatch(/^\.secret\.[0-9a-f]{12}$/);
    expect(await readdir(folder)).toEqual(['secret']);
    expect((await openFiles()).filter((open) => open.startsWith(folder))).toEqual([]);
  });

  test('replaces an existing file by renaming a new one over it: the old file is never written into', async () => {
    const folder = await aFolder('replace');
    const file = path.join(folder, 'password');
    await writeFile(file, 'old content that is longer', { mode: 0o644 });
    await link(file, path.join(folder, 'old-link'));
    const old = await stat(file);

    await writePrivateFile(file, 'new');
    expect(await readFile(file, 'utf8')).toBe('new');
    const info = await stat(file);
    expect(info.ino).not.toBe(old.ino);
    expect(info.mode & 0o7777).toBe(0o600);
    expect(await readFile(path.join(folder, 'old-link'), 'utf8')).toBe('old content that is longer');
    expect((await stat(path.join(folder, 'old-link'))).mode & 0o7777).toBe(0o644);
    expect((await readdir(folder)).sort()).toEqual(['old-link', 'password']);
  });

  test('when the new file cannot be put in place, the error is thrown and the partial file removed', async () => {
    const folder = await aFolder('fails');
    const target = path.join(folder, 'taken');
    await mkdir(target);
    const error = await rejection(writePrivateFile(target, 'content'));
    expect([error.code, error.syscall]).toEqual(['EISDIR', 'rename']);
    expect(await readdir(folder)).toEqual(['taken']);
    expect((await openFiles()).filter((open) => open.startsWith(folder))).toEqual([]);

    const nowhere = path.join(folder, 'missing', 'file');
    expect((await rejection(writePrivateFile(nowhere, 'content'))).code).toBe('ENOENT');
  });

  test.skipIf(!isRoot())('as root: a file handed to another user is owned by that user and group, still 0600', async () => {
    const file = path.join(await aFolder('owned'), 'password');
    await writePrivateFile(file, 'theirs', postgresUser);
    const info = await stat(file);
    expect([info.uid, info.gid, info.mode & 0o7777]).toEqual([postgresUser.uid, postgresUser.gid, 0o600]);
    expect(await readFile(file, 'utf8')).toBe('theirs');
    expect(await userCan(postgresUser, 'r', file)).toBe(true);
  });
});

describe('the shared folder', () => {
  const refusal = (folder: string, state: string) =>
    `${folder} must be a folder owned by root that only root can write (it is ${state}); another user could swap the embedded server's files there. Remove it (rm -rf ${folder}) and run again.`;

  test.skipIf(!isRoot())('as root: is made in the base folder, named vault-db-embedded, owned by root with mode 0755', async () => {
    const base = await aFolder('base');
    const folder = await sharedRootFolder(base);
    expect(folder).toBe(`${base}/vault-db-embedded`);
    expect(SHARED_FOLDER_NAME).toBe('vault-db-embedded');
    const info = await lstat(folder);
    expect([info.isDirectory(), info.uid, info.mode & 0o7777]).toEqual([true, 0, 0o755]);
    expect(await sharedRootFolder(base), 'one made before is used again').toBe(folder);
  });

  test.skipIf(!isRoot())('as root: is mode 0755 even under umask 0', async () => {
    const base = await aFolder('umask');
    const made = await inNode(`process.umask(0); const m = await import(${JSON.stringify(moduleUrl('shared-folder.ts'))}); console.log(await m.sharedRootFolder(${JSON.stringify(base)}));`);
    expect(made.trim()).toBe(`${base}/vault-db-embedded`);
    expect((await stat(`${base}/vault-db-embedded`)).mode & 0o7777).toBe(0o755);
  });

  test.skipIf(!isRoot())('as root: is under /var/tmp by default', async () => {
    expect(await sharedRootFolder()).toBe('/var/tmp/vault-db-embedded');
  });

  test('a failure to make it other than "it exists" is thrown as it is', async () => {
    const base = path.join(await aFolder('file-base'), 'a-file');
    await writeFile(base, '');
    const error = await rejection(sharedRootFolder(base));
    expect([error.code, error.syscall]).toEqual(['ENOTDIR', 'mkdir']);
  });

  test.skipIf(!isRoot())('as root: one made by another user, or that others may write, is refused (unsafe_folder)', async () => {
    const base = await aFolder('taken');
    const folder = path.join(base, 'vault-db-embedded');
    await mkdir(folder, { mode: 0o755 });
    await chown(folder, postgresUser.uid, postgresUser.gid);
    const error = await rejection(sharedRootFolder(base));
    expect(error).toBeInstanceOf(EmbeddedServerError);
    expect([error.reason, error.message]).toEqual(['unsafe_folder', refusal(folder, `owned by uid ${postgresUser.uid}, mode 755`)]);
  });

  test.skipIf(!isRoot())("as root: a root-owned folder only root may write passes, whatever else it allows", async () => {
    for (const mode of [0o755, 0o700, 0o1755, 0o711]) {
      const folder = await aFolder('good', mode);
      await expect(assertOnlyRootWrites(folder), mode.toString(8)).resolves.toBeUndefined();
    }
  });

  test.skipIf(!isRoot())('as root: a folder of another user is refused, naming its owner and mode', async () => {
    const folder = await aFolder('theirs', 0o755);
    await chown(folder, postgresUser.uid, 0);
    const error = await rejection(assertOnlyRootWrites(folder));
    expect(error).toBeInstanceOf(EmbeddedServerError);
    expect([error.reason, error.message]).toEqual(['unsafe_folder', refusal(folder, `owned by uid ${postgresUser.uid}, mode 755`)]);
  });

  test.skipIf(!isRoot())('as root: a folder its group or other users may write is refused, naming its mode', async () => {
    for (const [mode, shown] of [
      [0o775, '775'],
      [0o757, '757'],
      [0o1777, '1777'],
    ] as const) {
      const folder = await aFolder('writable', mode);
      const error = await rejection(assertOnlyRootWrites(folder));
      expect(error, shown).toBeInstanceOf(EmbeddedServerError);
      expect([error.reason, error.message]).toEqual(['unsafe_folder', refusal(folder, `owned by uid 0, mode ${shown}`)]);
    }
  });

  test('a link to a good folder, or a file, is refused as not a folder', async () => {
    const good = await aFolder('target', 0o755);
    const linked = `${good}-link`;
    await symlink(good, linked);
    const file = `${good}-file`;
    await writeFile(file, '');
    for (const notAFolder of [linked, file]) {
      const error = await rejection(assertOnlyRootWrites(notAFolder));
      expect(error, notAFolder).toBeInstanceOf(EmbeddedServerError);
      expect([error.reason, error.message]).toEqual(['unsafe_folder', refusal(notAFolder, 'not a folder')]);
    }
    expect((await rejection(assertOnlyRootWrites(`${good}-missing`))).code).toBe('ENOENT');
  });
});

describe('the server user', () => {
  test('isRoot says whether this process runs as uid 0', () => {
    expect(isRoot()).toBe(process.getuid?.() === 0);
  });

  test.skipIf(!isRoot())('as root: it is the postgres user, switched to, with the uid and gid id reports', async () => {
    expect(ROOT_SERVER_USER).toBe('postgres');
    expect(await serverUser()).toEqual(postgresUser);
    expect(postgresUser.uid).not.toBe(0);
  });

  test.skipIf(!isRoot())('as a normal user (nobody, started from root): it is that user, not switched', async (context) => {
    const nobody = { uid: 65534, gid: 65534 };
    if (!(await userCan({ name: 'nobody', ...nobody, switched: true }, 'r', new URL(moduleUrl('server-user.ts')).pathname))) {
      context.skip('nobody cannot read this checkout');
    }
    const out = await inNode(
      `const m = await import(${JSON.stringify(moduleUrl('server-user.ts'))}); console.log(JSON.stringify({ root: m.isRoot(), user: await m.serverUser() }));`,
      nobody,
    );
    const { stdout: name } = await run('id', ['-un', String(nobody.uid)]);
    expect(JSON.parse(out)).toEqual({ root: false, user: { name: name.trim(), uid: 65534, gid: 65534, switched: false } });
  });

  test.skipIf(!isRoot())('as root: userCan asks the kernel as the postgres user', async () => {
    const open = await aFolder('open', 0o755);
    const closed = await aFolder('closed', 0o700);
    expect(await userCan(postgresUser, 'x', open)).toBe(true);
    expect(await userCan(postgresUser, 'x', closed)).toBe(false);
    expect(await userCan(postgresUser, 'x', path.join(open, 'missing'))).toBe(false);

    const readable = path.join(open, 'readable');
    await writeFile(readable, '', { mode: 0o644 });
    const secret = path.join(open, 'secret');
    await writeFile(secret, '', { mode: 0o600 });
    expect(await userCan(postgresUser, 'r', readable)).toBe(true);
    expect(await userCan(postgresUser, 'x', readable), 'a file without x bits').toBe(false);
    expect(await userCan(postgresUser, 'r', secret)).toBe(false);
  });

  test('userCan for a user that is not switched asks as this process', async () => {
    const closed = await aFolder('mine', 0o700);
    // The uid of the postgres user (when there is one), but not switched to: this process asks.
    const notSwitched: ServerUser = { name: 'postgres', uid: postgresUser?.uid ?? 101, gid: postgresUser?.gid ?? 104, switched: false };
    expect(await userCan(notSwitched, 'x', closed)).toBe(true);
    expect(await userCan(notSwitched, 'r', closed)).toBe(true);
    const file = path.join(closed, 'data');
    await writeFile(file, '', { mode: 0o600 });
    expect(await userCan(notSwitched, 'x', file)).toBe(false);
  });

  describe.runIf(isRoot())('as root, when the postgres user is missing', () => {
    /**
     * Runs serverUser with PATH set to a folder of stand-in scripts (each `name: body`) that
     * record their arguments in `<name>.args`; returns what it gave or threw, and the arguments.
     */
    async function withStandIns(scripts: Record<string, string>): Promise<{ result: ServerUser | (Error & { reason?: string; logFile?: string }); args: Record<string, string> }> {
      const bin = await aFolder('bin');
      for (const [name, body] of Object.entries(scripts)) {
        await writeFile(path.join(bin, name), `#!/bin/sh\nPATH=/usr/bin:/bin\necho "$*" >> "${bin}/${name}.args"\n${body}\n`, { mode: 0o755 });
      }
      const saved = process.env.PATH;
      process.env.PATH = bin;
      let result: ServerUser | Error;
      try {
        result = await serverUser().catch((error: Error) => error);
      } finally {
        process.env.PATH = saved;
      }
      const args: Record<string, string> = {};
      for (const name of Object.keys(scripts)) args[name] = await readFile(path.join(bin, `${name}.args`), 'utf8').catch(() => '');
      return { result, args };
    }
    const noUser = 'echo "id: \'postgres\': no such user" >&2; exit 1';
    const useraddArgs = '--system --gid postgres --no-create-home --shell /usr/sbin/nologin postgres\n';
    const couldNotCreate = (why: string) =>
      `As root, the embedded PostgreSQL runs as the OS user "postgres" (PostgreSQL refuses root), which is missing and could not be created (${why}); create it (useradd --system postgres) or run as a normal user.`;

    test('it is made with groupadd (which may fail: the group may exist) and useradd, then looked up', async () => {
      const { result, args } = await withStandIns({
        id: `[ -e "$(dirname "$0")/made" ] || { ${noUser}; }\ncase "$1 $2" in "-u postgres") echo 4321;; "-g postgres") echo 8765;; *) exit 2;; esac`,
        groupadd: 'echo "groupadd: group \'postgres\' already exists" >&2; exit 9',
        useradd: 'touch "$(dirname "$0")/made"',
      });
      expect(result).toEqual({ name: 'postgres', uid: 4321, gid: 8765, switched: true });
      expect(args.groupadd).toBe('--system postgres\n');
      expect(args.useradd).toBe(useraddArgs);
      expect(args.id!.split('\n').filter(Boolean).sort()).toEqual(['-g postgres', '-g postgres', '-u postgres', '-u postgres']);
    });

    test('a failing useradd is server_user, quoting the first line of what it said', async () => {
      const { result, args } = await withStandIns({
        id: noUser,
        groupadd: 'exit 0',
        useradd: 'printf "\\n  useradd: cannot lock /etc/passwd; try again later.\\nsecond line\\n" >&2; exit 1',
      });
      expect(result).toBeInstanceOf(EmbeddedServerError);
      const error = result as EmbeddedServerError;
      expect(error.reason).toBe('server_user');
      expect(error.message).toBe(couldNotCreate('useradd: cannot lock /etc/passwd; try again later.'));
      expect(error.logFile).toBeUndefined();
      expect((error.cause as { code?: number }).code).toBe(1);
      expect(args.useradd).toBe(useraddArgs);
    });

    test('a useradd that fails silently, or is not there, is quoted by its error', async () => {
      const silent = await withStandIns({ id: noUser, groupadd: 'exit 0', useradd: 'exit 1' });
      expect((silent.result as EmbeddedServerError).message).toBe(couldNotCreate(`Command failed: useradd ${useraddArgs.trim()}`));
      const missing = await withStandIns({ id: noUser, groupadd: 'exit 0' });
      expect((missing.result as EmbeddedServerError).reason).toBe('server_user');
      expect((missing.result as EmbeddedServerError).message).toBe(couldNotCreate('spawn useradd ENOENT'));
    });

    test("a user that useradd made but id can't find is server_user", async () => {
      const { result, args } = await withStandIns({ id: noUser, groupadd: 'exit 0', useradd: 'exit 0' });
      expect(result).toBeInstanceOf(EmbeddedServerError);
      expect((result as EmbeddedServerError).reason).toBe('server_user');
      expect((result as EmbeddedServerError).message).toBe(`The OS user "postgres" was created but can't be found; check /etc/passwd.`);
      expect(args.useradd).toBe(useraddArgs);
    });
  });
});
