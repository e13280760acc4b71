/**
 * Who uses the server: one lease file per process (`vault-db/users/<pid>-<start>`), written
 * before the process looks at the server and removed when it is done. A lease whose process has
 * ended (killed, crashed, hung up) no longer counts and is pruned by whoever looks next, so a
 * `kill -9` can never keep the server alive for good.
 *
 * Synchronous on purpose: a process releases its lease from its 'exit' event, where only
 * synchronous code runs.
 *
 * @module
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { formatProcessId, isRunning, parseProcessId, type ProcessId } from './process-identity.js';

/** Records that `user` uses the server of this leases folder. */
export function takeLease(leasesDir: string, user: ProcessId): void {
  mkdirSync(leasesDir, { recursive: true, mode: 0o700 });
  // The name says who; the content only when (a command line could hold a database password).
  writeFileSync(path.join(leasesDir, formatProcessId(user)), `${new Date().toISOString()}\n`, { mode: 0o600 });
}

/** Ends `user`'s lease. */
export function releaseLease(leasesDir: string, user: ProcessId): void {
  rmSync(path.join(leasesDir, formatProcessId(user)), { force: true });
}

/** The processes that hold a lease and still run; the leases of ended ones are removed. */
export function liveLeaseHolders(leasesDir: string): ProcessId[] {
  let names: string[];
  try {
    names = readdirSync(leasesDir);
  } catch {
    return [];
  }
  const live: ProcessId[] = [];
  for (const name of names) {
    const holder = parseProcessId(name);
    if (holder && isRunning(holder)) live.push(holder);
    else if (holder) rmSync(path.join(leasesDir, name), { force: true });
  }
  return live;
}
