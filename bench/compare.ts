/**
 * The correctness half of the bench: the service's and the baseline's results must be the same up
 * to what necessarily differs (vault ids inside cursors, row ids, timestamps). Differences are
 * collected, not thrown, so one run reports all of them; any difference makes the bench exit 1.
 *
 * @module
 */
import { decodeCursor } from '../src/sync/cursor.js';
import type { PullResult, PushResult, RecordState } from '../src/sync/types.js';

/** What the comparisons found. */
export class Findings {
  /** Service and baseline disagree: the bench fails. */
  readonly mismatches: string[] = [];
  /** Worth a look but not a disagreement in content (reported, not failed). */
  readonly notes = new Set<string>();

  /** Records a mismatch when `service` and `baseline` differ, naming where. */
  same(where: string, service: unknown, baseline: unknown): boolean {
    const diff = firstDifference(service, baseline, '');
    if (diff === null) return true;
    this.mismatches.push(`${where}: ${diff}`);
    return false;
  }
}

function firstDifference(a: unknown, b: unknown, path: string): string | null {
  if (Object.is(a, b)) return null;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) {
    return `${path || '(root)'}: service ${brief(a)} vs baseline ${brief(b)}`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const diff = firstDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], path ? `${path}.${key}` : key);
    if (diff !== null) return diff;
  }
  return null;
}

function brief(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** A record state without its timestamp, with bytes as hex. */
function state(s: RecordState | null): unknown {
  return s && { recordId: s.recordId, version: s.version, deleted: s.deleted, ciphertext: s.ciphertext === null ? null : s.ciphertext.toString('hex') };
}

/** The feed position a cursor stands at, after checking it names `vaultId`. */
function cursorSeq(cursor: string, vaultId: string): number {
  return decodeCursor(cursor, vaultId).seq;
}

/** A push result in comparable form. */
export function normalizePush(result: PushResult, vaultId: string): unknown {
  return {
    applied: result.applied,
    conflicts: result.conflicts.map((c) => ({ recordId: c.recordId, reason: c.reason, server: state(c.server) })),
    cursor: cursorSeq(result.cursor, vaultId),
  };
}

/** A pull result in comparable form. */
export function normalizePull(result: PullResult, vaultId: string): unknown {
  return { changes: result.changes.map(state), hasMore: result.hasMore, cursor: cursorSeq(result.cursor, vaultId) };
}

/**
 * Notes record states whose `updatedAt` is not a `Date`, as `RecordState` promises. Values differ
 * between the two vaults by nature, so only the type is checked.
 */
export function checkTimestamps(findings: Findings, who: string, call: string, states: (RecordState | null)[]): void {
  const bad = states.find((s) => s !== null && !(s.updatedAt instanceof Date));
  if (bad) findings.notes.add(`${who} ${call} returns updatedAt as a ${typeof bad.updatedAt} (like "2026-01-01 12:00:00.123456+00"), not a Date as RecordState declares`);
}
