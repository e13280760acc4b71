/**
 * The server process of a data dir: finding it (`postmaster.pid`), proving it is this data dir's
 * (its process, and `show data_directory` over a login with this data dir's password), starting
 * it with its output in a log file, and reading that log when it fails.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readSync, readlinkSync, realpathSync } from 'node:fs';
import { rename, stat } from 'node:fs/promises';
import pg from 'pg';
import { pgConnectionConfig } from '../connection-options.js';
import { SUPERUSER } from './cluster.js';
import { EmbeddedServerError } from './errors.js';
import type { Layout } from './layout.js';
import { writePrivateFile } from './private-file.js';
import { isRunning, processOf, type ProcessId } from './process-identity.js';

/** What `postmaster.pid` says about the running server. */
export interface PostmasterFile {
  pid: number;
  dataDir: string;
  port: number;
  /** `starting`, `ready`, `stopping` or `standby`. */
  status: string;
}

/** Reads `postmaster.pid`; null when there is none (no server, or it stopped cleanly). */
export function readPostmasterFile(dataDir: string): PostmasterFile | null {
  let text: string;
  try {
    text = readFileSync(`${dataDir}/postmaster.pid`, 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null; // being written
  return { pid, dataDir: lines[1] ?? '', port: Number(lines[3]), status: (lines[7] ?? '').trim() };
}

/**
 * The running postmaster of `dataDir`, or null. A pid file whose process has ended, or whose pid
 * now belongs to another program, names no server. Where /proc shows it, the process must be a
 * postgres whose working folder is the data dir (the postmaster changes into it at start).
 */
export function runningPostmaster(dataDir: string): (PostmasterFile & { process: ProcessId }) | null {
  const file = readPostmasterFile(dataDir);
  if (!file) return null;
  const process = processOf(file.pid);
  if (!isRunning(process)) return null;
  const comm = readProc(`/proc/${file.pid}/comm`);
  if (comm !== null && !comm.startsWith('postgres')) return null;
  let cwd: string | null = null;
  try {
    cwd = readlinkSync(`/proc/${file.pid}/cwd`);
  } catch {
    cwd = null; // no /proc, or not allowed to look: the login check decides
  }
  if (cwd !== null && cwd !== realpathOr(dataDir)) return null;
  return { ...file, process };
}

function readProc(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function realpathOr(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}

/**
 * The connection URL of the `postgres` database on the server. `sslmode=disable` is said outright:
 * this server has no TLS and listens on loopback only, and a PGSSLMODE meant for a remote server
 * must not make every local command fail.
 */
export function serverUrl(port: number, password: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres?sslmode=disable`;
}

/** What a login to the server on `port` showed. */
export type Verification = { ok: true } | { ok: false; why: 'login_rejected' | 'other_data_dir' | 'unreachable'; detail: string };

/**
 * Logs in to 127.0.0.1:`port` with this data dir's password and checks that the server serves
 * this data dir: a server of another checkout that happens to answer on the port is not ours,
 * even when it takes the same login.
 */
export async function verifyServer(layout: Layout, port: number, password: string): Promise<Verification> {
  const client = new pg.Client({ ...pgConnectionConfig(serverUrl(port, password)), connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ data_directory: string }>('show data_directory');
    const served = rows[0]?.data_directory ?? '';
    if (realpathOr(served) !== realpathOr(layout.dataDir)) return { ok: false, why: 'other_data_dir', detail: served };
    return { ok: true };
  } catch (error) {
    const e = error as { code?: string; message?: string };
    if (e.code === '28P01' || e.code === '28000') return { ok: false, why: 'login_rejected', detail: e.message ?? '' };
    return { ok: false, why: 'unreachable', detail: e.message ?? String(error) };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Only password logins over 127.0.0.1, with scram-sha-256; no Unix socket, no trust. Written
 * before every start, so a data dir made by anything else gets the same rules.
 */
export async function writeAccessRules(layout: Layout): Promise<void> {
  const rules = [
    '# Written by vault-db before every start of the embedded server; changes are overwritten.',
    '# Password logins (scram-sha-256) over 127.0.0.1 only; the password is in vault-db/password.',
    'host all all 127.0.0.1/32 scram-sha-256',
    '',
  ].join('\n');
  await writePrivateFile(`${layout.dataDir}/pg_hba.conf`, rules, layout.user.switched ? layout.user : undefined);
}

/** A server this process started; `ready` settles when it accepts connections, or rejects. */
export interface StartedPostmaster {
  child: ChildProcess;
  ready: Promise<void>;
}

/** The server flags: TCP on 127.0.0.1 only, no Unix socket, English log lines (the failure classifier reads them). */
export function serverArguments(layout: Layout, port: number): string[] {
  return [
    '-D', layout.dataDir,
    '-p', String(port),
    '-c', 'listen_addresses=127.0.0.1',
    '-c', 'unix_socket_directories=',
    '-c', 'password_encryption=scram-sha-256',
    '-c', 'max_connections=200',
    '-c', 'fsync=off',
    '-c', 'lc_messages=C',
  ];
}

/**
 * Starts the postmaster in its own session (so a Ctrl-C or hang-up of the terminal doesn't reach
 * it, and it outlives this process only until the watchdog or the next user sees to it), with
 * stdout and stderr going to the log file. The previous run's log is kept as `server.log.1`.
 */
export async function spawnPostmaster(layout: Layout, port: number, deadline: number): Promise<StartedPostmaster> {
  if (await stat(layout.logFile).catch(() => null)) await rename(layout.logFile, `${layout.logFile}.1`);
  // Kept open until the start is decided, and read through this descriptor: the log of *this*
  // start, even if a racing process renames the file meanwhile.
  const log = openSync(layout.logFile, 'a+', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(layout.binaries.postgres, serverArguments(layout, port), {
      ...(layout.user.switched ? { uid: layout.user.uid, gid: layout.user.gid } : {}),
      env: { ...process.env, LC_MESSAGES: 'C' },
      stdio: ['ignore', log, log],
      detached: true,
    });
  } catch (error) {
    closeSync(log); // spawn() throws only for arguments it can't use; nothing will read the log
    throw error;
  }
  child.unref();
  const exited = new Promise<never>((_, reject) => {
    const fail = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
      reject(classifyStartFailure(layout, port, readFromStart(log), error ? `it could not be run: ${error.message}` : `it exited with ${signal ?? `code ${code}`}`));
    };
    child.once('error', (error) => fail(null, null, error));
    child.once('exit', (code, signal) => fail(code, signal));
  });
  exited.catch(() => {}); // observed through `ready`
  const ready = (async () => {
    while (Date.now() < deadline) {
      const file = readPostmasterFile(layout.dataDir);
      if (file && file.pid === child.pid && file.status === 'ready') return;
      await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
    }
    child.kill('SIGINT');
    throw new EmbeddedServerError('start_timeout', `The embedded PostgreSQL did not become ready in time (data dir ${layout.dataDir}); the machine may be overloaded: run again, or read the log.`, layout.logFile);
  })();
  // Once decided, the 'exit' listener must not read a closed descriptor, and the server (now
  // running on its own) must not keep this process alive.
  const settled = ready.finally(() => {
    child.removeAllListeners('exit');
    child.removeAllListeners('error');
    child.on('error', () => {});
    closeSync(log);
  });
  return { child, ready: settled };
}

/**
 * The whole file behind `fd`, read at explicit offsets: the server shares the descriptor's file
 * position (and moves it to the end with every append), so a plain read would find nothing.
 */
function readFromStart(fd: number): string {
  try {
    const buffer = Buffer.alloc(fstatSync(fd).size);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read).toString('utf8');
  } catch {
    return '';
  }
}

/** Set when the server lost the race to another process's start of the same data dir. */
export class LostStartRace extends Error {}

/**
 * Turns the log of a failed start into one line that names the cause and the fix. The log says
 * it in PostgreSQL's words (forced to English by lc_messages=C); only the known causes are
 * recognised, anything else is quoted.
 */
export function classifyStartFailure(layout: Layout, port: number, log: string, how: string): Error {
  const lines = log.split('\n').map((l) => l.trim()).filter(Boolean);
  const first = (pattern: RegExp) => lines.find((l) => pattern.test(l));
  // PostgreSQL's own words without the log line's prefix (time, pid, severity), as one sentence.
  const quote = (line: string | undefined) => (line ?? how).replace(/^.*?\b(FATAL|PANIC|ERROR|LOG|DETAIL|HINT):\s+/, '').replace(/^postgres: /, '');
  const sentence = (text: string) => (/[.!?]$/.test(text) ? text : `${text}.`);
  if (first(/lock file "postmaster\.pid" already exists/)) return new LostStartRace();
  if (first(/Address already in use|could not create any TCP\/IP sockets|could not bind/)) {
    return new EmbeddedServerError(
      'port_in_use',
      `The embedded PostgreSQL could not listen on 127.0.0.1:${port}: another program holds that port (another checkout's server?); set EMBEDDED_PG_PORT to a free port, or stop that program.`,
      layout.logFile,
    );
  }
  const incompatible = first(/database files are incompatible with server|initialized by PostgreSQL version/);
  if (incompatible) {
    const detail = first(/initialized by PostgreSQL version/) ?? incompatible;
    return new EmbeddedServerError(
      'data_dir_version',
      `The embedded PostgreSQL ${layout.major} can't open ${layout.dataDir}: ${sentence(quote(detail))} Point VAULT_DB_DATA_DIR at another folder, or move this one away.`,
      layout.logFile,
    );
  }
  // Only what says the data dir itself is broken: the advice is to move it away. A bad setting or
  // a missing library ("invalid value for parameter", "could not access file \"$libdir/…\"") is
  // not damage, and falls through to start_failed with PostgreSQL's own line.
  const damage = first(/could not find the database system|pg_control|control file|checkpoint record|could not access the server configuration file|startup process .* was terminated|could not (open|read|stat) (file|directory)|PANIC|invalid data|is not a valid data directory/);
  if (damage) {
    return new EmbeddedServerError(
      'data_dir_damaged',
      `The embedded PostgreSQL could not start from ${layout.dataDir}, which is damaged (${quote(damage)}); move it away or delete it to start with a new, empty one.`,
      layout.logFile,
    );
  }
  return new EmbeddedServerError('start_failed', `The embedded PostgreSQL stopped while starting (${how}): ${sentence(quote(first(/FATAL|PANIC|ERROR/) ?? lines.at(-1)))}`, layout.logFile);
}
