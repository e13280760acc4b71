/**
 * Where everything of one embedded server lives. The data dir (PostgreSQL's PGDATA) is the
 * server's identity: its `postmaster.pid` says which process serves it, and the folder
 * `vault-db/` inside it holds what this package adds:
 *
 * | file | what |
 * |---|---|
 * | `vault-db/password` | the superuser's password, random per data dir, mode 0600 |
 * | `vault-db/server.log` | everything the server printed (the previous run's in `server.log.1`) |
 * | `vault-db/watchdog.log` | what the watchdog did (see watchdog.ts) |
 * | `vault-db/users/<pid>-<start>` | one lease per process that uses the server |
 * | `vault-db/stopping` | present while a process decides to stop the server, or stops it |
 * | `vault-db/watchdog` | the watchdog process of the running server |
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type Binaries, binariesFor, checkBinaries, locateBinaries, majorVersion } from './binaries.js';
import { sharedRootFolder } from './shared-folder.js';
import { type ServerUser, serverUser, userCan } from './server-user.js';

/** The files of one embedded server. */
export interface Layout {
  /** The data dir that was asked for. */
  requestedDir: string;
  /** The data dir in use: the requested one, or as root a stand-in the server user can reach. */
  dataDir: string;
  /** Why `dataDir` is not `requestedDir`, when it isn't. */
  movedBecause?: string;
  metaDir: string;
  passwordFile: string;
  logFile: string;
  watchdogLogFile: string;
  leasesDir: string;
  stopMarker: string;
  watchdogFile: string;
  user: ServerUser;
  binaries: Binaries;
  /** Major version of the binaries. */
  major: number;
}

/** The paths inside a data dir that this package owns. */
export function metaPaths(dataDir: string): Pick<Layout, 'metaDir' | 'passwordFile' | 'logFile' | 'watchdogLogFile' | 'leasesDir' | 'stopMarker' | 'watchdogFile'> {
  const metaDir = path.join(dataDir, 'vault-db');
  return {
    metaDir,
    passwordFile: path.join(metaDir, 'password'),
    logFile: path.join(metaDir, 'server.log'),
    watchdogLogFile: path.join(metaDir, 'watchdog.log'),
    leasesDir: path.join(metaDir, 'users'),
    stopMarker: path.join(metaDir, 'stopping'),
    watchdogFile: path.join(metaDir, 'watchdog'),
  };
}

/** What decides the layout. */
export interface LayoutOptions {
  dataDir: string;
  nativeDir?: string;
}

/**
 * Decides where the server's binaries and data are, checking the binaries on the way. As root,
 * nothing above the checkout is ever opened up: a data dir or binaries the `postgres` user can't
 * reach are placed in the shared root-owned folder instead (see shared-folder.ts).
 */
export async function resolveLayout(options: LayoutOptions): Promise<Layout> {
  const requestedDir = path.resolve(options.dataDir);
  const user = await serverUser();
  const located = await locateBinaries(options.nativeDir);
  await checkBinaries(located);
  const major = await majorVersion(located);
  let shared: Promise<string> | undefined;
  const sharedFolder = () => (shared ??= sharedRootFolder());
  const binaries = await binariesFor(user, located, sharedFolder);

  let dataDir = requestedDir;
  let movedBecause: string | undefined;
  if (user.switched) {
    const parent = path.dirname(requestedDir);
    await mkdir(parent, { recursive: true });
    if (!(await userCan(user, 'x', parent))) {
      const id = createHash('sha256').update(requestedDir).digest('hex').slice(0, 16);
      dataDir = path.join(await sharedFolder(), `data-${id}`);
      movedBecause = `the "${user.name}" user that runs the server can't reach ${parent} (a folder above it is private, and vault-db never opens one up)`;
    }
  }
  return { requestedDir, dataDir, ...(movedBecause ? { movedBecause } : {}), ...metaPaths(dataDir), user, binaries, major };
}
