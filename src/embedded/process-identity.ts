/**
 * Which process is which, robust against pid reuse: a pid together with the time the process
 * started. A lease or a stop marker written by a process that has since ended must never be
 * mistaken for a live one just because the kernel handed its pid to a newcomer.
 *
 * @module
 */
import { readFileSync } from 'node:fs';

/** A process, named by its pid and (where the OS tells) its start time. */
export interface ProcessId {
  pid: number;
  /** Clock ticks after boot at which the process started (`/proc/<pid>/stat`, field 22); null where /proc is missing. */
  startTime: string | null;
}

/** The state and start time of `pid` from /proc, or null when /proc doesn't tell (no such process, or no /proc). */
function procStat(pid: number): { state: string; startTime: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may itself contain spaces and ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', startTime: fields[19] ?? '' };
  } catch {
    return null;
  }
}

/** The start time of `pid`, or null when /proc doesn't tell (no such process, or no /proc). */
export function processStartTime(pid: number): string | null {
  return procStat(pid)?.startTime ?? null;
}

/** This process. */
export function currentProcess(): ProcessId {
  return { pid: process.pid, startTime: processStartTime(process.pid) };
}

/** The process `pid` as it is now (its start time read from /proc). */
export function processOf(pid: number): ProcessId {
  return { pid, startTime: processStartTime(pid) };
}

/**
 * True while `id` still runs: its pid exists and, where /proc tells, started at the same time.
 * A pid owned by another user counts as existing (`kill` answers EPERM).
 */
export function isRunning(id: ProcessId): boolean {
  if (!Number.isInteger(id.pid) || id.pid <= 0) return false;
  try {
    process.kill(id.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (id.startTime === null) return true;
  const now = procStat(id.pid);
  // An ended process waiting to be reaped (a zombie) no longer runs.
  return now !== null && now.startTime === id.startTime && now.state !== 'Z' && now.state !== 'X';
}

/** `pid-startTime`, the form used in file names. */
export function formatProcessId(id: ProcessId): string {
  return `${id.pid}-${id.startTime ?? 'x'}`;
}

/** The inverse of {@link formatProcessId}; null for a name that isn't one. */
export function parseProcessId(text: string): ProcessId | null {
  const match = /^(\d+)-(\d+|x)$/.exec(text.trim());
  if (!match) return null;
  return { pid: Number(match[1]), startTime: match[2] === 'x' ? null : (match[2] ?? null) };
}
