/**
 * Helpers of the embedded-server tests: scratch data dirs under /tmp/embedded-*, processes that
 * use the server (child.ts), and waiting for a process to end.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, realpath, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { isRunning, processOf } from '../../src/embedded/process-identity.js';
import type { EmbeddedPostgresOptions } from '../../src/embedded-postgres.js';

/** The project root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

/**
 * A new empty folder under /tmp named embedded-*, removed by `remove`. Mode 0755 (mkdtemp makes
 * 0700), so that as root the `postgres` user can reach data dirs inside it, as in a checkout.
 */
export async function scratchFolder(): Promise<{ path: string; remove: () => Promise<void> }> {
  const folder = await mkdtemp('/tmp/embedded-');
  await chmod(folder, 0o755);
  return { path: folder, remove: () => rm(folder, { recursive: true, force: true }) };
}

/**
 * A port of `range` that nothing listens on or is bound to right now. Any fixed port can be taken
 * at a given moment, if only as the local end of some client connection (the kernel hands out
 * 32768-60999 for those), so tests pick one that is free instead of assuming it.
 */
export async function freePort([from, to]: [number, number]): Promise<number> {
  for (let port = from; port <= to; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port from ${from} to ${to}`);
}

/** What child.ts printed. */
export type ChildReport =
  | { ok: true; origin: string; pid: number; url: string; dataDir: string; logFile: string }
  | { ok: false; name: string; reason?: string; message: string };

/** A running child.ts. */
export interface UserProcess {
  child: ChildProcess;
  report: ChildReport;
  /** Resolves with the exit code (or signal) when the process has ended. */
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/** Starts child.ts with `options` and `mode`, and waits for its report. */
export async function startUser(
  options: EmbeddedPostgresOptions,
  mode: string,
  env: NodeJS.ProcessEnv = {},
  cwd = ROOT,
  script = CHILD,
  as?: { uid: number; gid: number },
): Promise<UserProcess> {
  const childEnv = { ...process.env, ...env };
  delete childEnv.DATABASE_URL;
  delete childEnv.DIRECT_URL;
  const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(options), mode], { cwd, env: childEnv, stdio: ['pipe', 'pipe', 'pipe'], ...as });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const report = await new Promise<ChildReport>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line && stdout.includes('\n')) resolve(JSON.parse(line) as ChildReport);
    });
    void ended.then(({ code, signal }) => reject(new Error(`child ended (${signal ?? code}) before reporting; stderr: ${stderr}`)));
  });
  return { child, report, ended, stderr: () => stderr };
}

/** The handle a child reported, or a failure that quotes the error it reported. */
export function started(user: UserProcess): Extract<ChildReport, { ok: true }> {
  if (!user.report.ok) throw new Error(`the child could not start the server: ${user.report.message}\n${user.stderr()}`);
  return user.report;
}

/** Ends a `hold` child normally (closes its stdin) and waits for it. */
export async function release(user: UserProcess): Promise<void> {
  user.child.stdin?.end();
  await user.ended;
}

export { waitUntil } from '../support/wait.js';

/** True while the process `pid` runs. */
export function running(pid: number): boolean {
  return isRunning(processOf(pid));
}

/** Runs one query on `url` and returns its first row. */
export async function queryOne<T>(url: string, sql: string): Promise<T> {
  const client = new pg.Client(pgConnectionConfig(url));
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query(sql)).rows[0] as T;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * `cp -a` (copies a data dir with its owners and modes). A `from` that is a symlink is followed:
 * a mutation run's sandbox links `node_modules` to the checkout's, and a copied link would leave
 * the binaries where the test means them to be out of reach.
 */
export async function copyTree(from: string, to: string, hardLinks = false): Promise<void> {
  await promisify(execFile)('cp', [hardLinks ? '-al' : '-a', await realpath(from), to]);
}
