/**
 * As root, the server's files sometimes can't stay where they were asked for: a checkout inside a
 * private folder (say one made by `mktemp -d`, mode 0700) is out of the `postgres` user's reach.
 * Rather than opening that folder (or a home directory) to every user, the files then go to a
 * folder of our own: root-owned, mode 0755, under /var/tmp. Only root can write there, so no other
 * user can plant binaries or swap a data dir; each data dir inside is 0700 and the server user's.
 *
 * @module
 */
import { lstat, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EmbeddedServerError } from './errors.js';

/** The folder's name under /var/tmp (or the temp folder where /var/tmp is missing). */
export const SHARED_FOLDER_NAME = 'vault-db-embedded';

/**
 * The root-owned folder for server files that must live outside the checkout, made if missing.
 *
 * @throws EmbeddedServerError (`unsafe_folder`) when it exists but is not a root-owned folder
 *   that only root can write (someone else made it first, or changed it).
 */
export async function sharedRootFolder(base = existsSync('/var/tmp') ? '/var/tmp' : tmpdir()): Promise<string> {
  const folder = path.join(base, SHARED_FOLDER_NAME);
  await mkdir(folder, { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  await assertOnlyRootWrites(folder);
  return folder;
}

/** Throws unless `folder` is a real folder (not a link), owned by root, not writable by group or others. */
export async function assertOnlyRootWrites(folder: string): Promise<void> {
  const info = await lstat(folder);
  if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022) !== 0) {
    throw new EmbeddedServerError(
      'unsafe_folder',
      `${folder} must be a folder owned by root that only root can write (it is ${info.isDirectory() ? `owned by uid ${info.uid}, mode ${(info.mode & 0o7777).toString(8)}` : 'not a folder'}); another user could swap the embedded server's files there. Remove it (rm -rf ${folder}) and run again.`,
    );
  }
}
