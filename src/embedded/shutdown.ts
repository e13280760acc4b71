/**
 * Stopping the server only when no process uses it, without racing a process that is just
 * starting to use it.
 *
 * A stopper (the last user leaving, or the watchdog) first creates the marker `vault-db/stopping`
 * (exclusively: one stopper at a time), then counts live leases. With a lease left it removes the
 * marker and leaves the server alone. With none it marks the decision (`phase: stopping`) and sends
 * the postmaster SIGINT (PostgreSQL's fast shutdown). The marker stays until the postmaster has
 * exited.
 *
 * A new user writes its lease *first* and only then looks for the marker. So either its lease was
 * there when the stopper counted (and the stopper backed off), or the marker was already there
 * when it looked (and it waits for that server to be gone, then starts a new one). It can never
 * pass a check, use the server, and see it stopped under it.
 *
 * @module
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { liveLeaseHolders } from './leases.js';
import { isRunning, type ProcessId } from './process-identity.js';

const processIdSchema = z.object({ pid: z.number().int(), startTime: z.string().nullable() });
const markerSchema = z.object({ phase: z.enum(['deciding', 'stopping']), stopper: processIdSchema, postmaster: processIdSchema });

/** The content of the stop marker. */
export type StopMarker = z.infer<typeof markerSchema>;

/** Where the stop protocol keeps its files. */
export interface ShutdownPaths {
  leasesDir: string;
  stopMarker: string;
}

/** What {@link tryStop} did. */
export type StopOutcome = 'stopping' | 'in_use' | 'other_stopper';

/**
 * Stops `postmaster` if no live process holds a lease; synchronous, so it works from 'exit'.
 * After `'stopping'` the caller may wait for the postmaster to exit and then call
 * {@link clearStopMarker}; a caller that can't wait leaves that to the next one who looks.
 */
export function tryStop(paths: ShutdownPaths, postmaster: ProcessId, stopper: ProcessId): StopOutcome {
  const marker: StopMarker = { phase: 'deciding', stopper, postmaster };
  try {
    writeFileSync(paths.stopMarker, JSON.stringify(marker), { flag: 'wx', mode: 0o600 });
  } catch {
    return 'other_stopper'; // it decides; and the watchdog looks again soon
  }
  if (liveLeaseHolders(paths.leasesDir).length > 0) {
    rmSync(paths.stopMarker, { force: true });
    return 'in_use';
  }
  const decided = `${paths.stopMarker}.${stopper.pid}`;
  writeFileSync(decided, JSON.stringify({ ...marker, phase: 'stopping' } satisfies StopMarker), { mode: 0o600 });
  renameSync(decided, paths.stopMarker);
  try {
    process.kill(postmaster.pid, 'SIGINT');
  } catch {
    // already gone
  }
  return 'stopping';
}

/** Reads the stop marker; null when there is none (or it is unreadable, being replaced). */
export function readStopMarker(paths: ShutdownPaths): StopMarker | null {
  try {
    return markerSchema.parse(JSON.parse(readFileSync(paths.stopMarker, 'utf8')));
  } catch {
    return null;
  }
}

/** Removes the marker if it still is the one about `postmaster`. */
export function clearStopMarker(paths: ShutdownPaths, postmaster: ProcessId): void {
  const marker = readStopMarker(paths);
  if (marker && marker.postmaster.pid === postmaster.pid && marker.postmaster.startTime === postmaster.startTime) rmSync(paths.stopMarker, { force: true });
}

/**
 * What a new user must do about a stop in progress: `wait` (a stopper is deciding, or the server
 * is going down), or `proceed` (no stop in progress). Finishes what an ended stopper left: a
 * decided stop whose stopper died is completed (SIGINT again), an undecided one is dropped.
 */
export function stopInProgress(paths: ShutdownPaths): 'wait' | 'proceed' {
  const marker = readStopMarker(paths);
  if (!marker) {
    try {
      readFileSync(paths.stopMarker);
      return 'wait'; // exists but is being replaced: look again
    } catch {
      return 'proceed';
    }
  }
  const serverRuns = isRunning(marker.postmaster);
  if (marker.phase === 'deciding') {
    if (isRunning(marker.stopper) && serverRuns) return 'wait';
    clearStopMarker(paths, marker.postmaster);
    return 'proceed';
  }
  if (!serverRuns) {
    clearStopMarker(paths, marker.postmaster);
    return 'proceed';
  }
  if (!isRunning(marker.stopper)) {
    try {
      process.kill(marker.postmaster.pid, 'SIGINT'); // the decision stands; see it through
    } catch {
      // gone meanwhile
    }
  }
  return 'wait';
}
