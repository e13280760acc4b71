/**
 * One process at a time starts a data dir's server: the others wait and then use it. PostgreSQL's
 * own lock (`postmaster.pid`) would refuse a second postmaster anyway; taking turns keeps the
 * loser from replacing the winner's log and from reporting a failure it then has to retry.
 *
 * @module
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Layout } from './layout.js';
import { formatProcessId, isRunning, parseProcessId, type ProcessId } from './process-identity.js';
import { readPostmasterFile, runningPostmaster } from './postmaster.js';

/** This process's turn to start the server; `release` when the start is decided. */
export interface StartTurn {
  release(): void;
}

/**
 * Takes the turn, or returns null when another live process has it (a turn whose holder ended is
 * cleared, for the next look). With the turn held, a `postmaster.pid` that names no running
 * server of this data dir is removed: PostgreSQL refuses to start when that pid now belongs to an
 * unrelated process (a `kill -9` left the file and the pid was reused).
 */
export function takeStartTurn(layout: Pick<Layout, 'metaDir' | 'dataDir'>, me: ProcessId): StartTurn | null {
  const file = path.join(layout.metaDir, 'starting');
  try {
    writeFileSync(file, formatProcessId(me), { flag: 'wx', mode: 0o600 });
  } catch {
    const holder = readHolder(file);
    if (!holder || !isRunning(holder)) rmSync(file, { force: true });
    return null;
  }
  if (readPostmasterFile(layout.dataDir) && !runningPostmaster(layout.dataDir)) rmSync(path.join(layout.dataDir, 'postmaster.pid'), { force: true });
  return {
    release: () => {
      if (readHolder(file)?.pid === me.pid) rmSync(file, { force: true });
    },
  };
}

function readHolder(file: string): ProcessId | null {
  try {
    return parseProcessId(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}
