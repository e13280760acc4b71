/**
 * The watchdog: a small detached process, one per running server, that stops the server once no
 * live process holds a lease on it. It is what reaps the server after its users were killed
 * (`kill -9`, a hang-up, a crash): they never got to run their exit handler. It ends when the
 * server ends.
 *
 * The users stop the server themselves when the last of them exits normally; the watchdog only
 * covers the endings that run no code. Its log is `vault-db/watchdog.log`.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import type { Layout } from './layout.js';
import { currentProcess, isRunning, processOf, type ProcessId } from './process-identity.js';
import { clearStopMarker, type ShutdownPaths, tryStop } from './shutdown.js';

/** How often the watchdog looks at the leases. */
export const WATCHDOG_INTERVAL_MS = 500;

const processIdSchema = z.object({ pid: z.number().int(), startTime: z.string().nullable() });
const watchdogArgsSchema = z.object({ leasesDir: z.string(), stopMarker: z.string(), watchdogFile: z.string(), postmaster: processIdSchema });
const watchdogFileSchema = z.object({ watchdog: processIdSchema, postmaster: processIdSchema });

/** What the watchdog process is told on its command line. */
export type WatchdogArgs = z.infer<typeof watchdogArgsSchema>;

/** Parses the watchdog's command-line argument. */
export function parseWatchdogArgs(json: string | undefined): WatchdogArgs {
  if (json === undefined) throw new Error('the watchdog takes its arguments as one JSON string, and got none');
  return watchdogArgsSchema.parse(JSON.parse(json));
}

/** The files of a data dir that the watchdog uses (see layout.ts). */
export type WatchdogPaths = Pick<Layout, 'leasesDir' | 'stopMarker' | 'watchdogFile' | 'watchdogLogFile'>;

/** Starts a watchdog for `postmaster` unless one already watches it. */
export function ensureWatchdog(layout: WatchdogPaths, postmaster: ProcessId): void {
  try {
    const current = watchdogFileSchema.parse(JSON.parse(readFileSync(layout.watchdogFile, 'utf8')));
    if (current.postmaster.pid === postmaster.pid && isRunning(current.watchdog)) return;
  } catch {
    // none yet
  }
  const args: WatchdogArgs = { leasesDir: layout.leasesDir, stopMarker: layout.stopMarker, watchdogFile: layout.watchdogFile, postmaster };
  const entry = fileURLToPath(new URL(`./watchdog-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));
  // From the TypeScript sources (tests, npm start) the entry needs tsx, as this module did.
  const loader = entry.endsWith('.ts') ? ['--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href] : [];
  const log = openSync(layout.watchdogLogFile, 'a', 0o600);
  try {
    const child = spawn(process.execPath, [...loader, entry, JSON.stringify(args)], { detached: true, stdio: ['ignore', log, log], env: { PATH: process.env.PATH ?? '' } });
    child.on('error', () => {});
    child.unref();
    if (child.pid) writeFileSync(layout.watchdogFile, JSON.stringify({ watchdog: processOf(child.pid), postmaster }), { mode: 0o600 });
  } finally {
    closeSync(log);
  }
}

/** The watchdog's loop: returns when the server has ended (stopped by it or by anyone else). */
export async function watch(args: WatchdogArgs, say: (line: string) => void): Promise<void> {
  const paths: ShutdownPaths = args;
  const me = currentProcess();
  say(`watching postmaster ${args.postmaster.pid}`);
  for (;;) {
    if (!isRunning(args.postmaster)) {
      clearStopMarker(paths, args.postmaster);
      say(`postmaster ${args.postmaster.pid} has ended`);
      return;
    }
    if (tryStop(paths, args.postmaster, me) === 'stopping') {
      say(`no live process uses postmaster ${args.postmaster.pid} any more: stopping it`);
      while (isRunning(args.postmaster)) await sleep(100);
      clearStopMarker(paths, args.postmaster);
      say(`postmaster ${args.postmaster.pid} stopped`);
      return;
    }
    await sleep(WATCHDOG_INTERVAL_MS);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
