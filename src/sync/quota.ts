/**
 * The per-vault quota: live records (`maxVaultRecords`) and bytes of live ciphertext
 * (`maxVaultBytes`). A call starts from the counters it read with the vault row lock, so two
 * concurrent pushes can't both slip past the quota: the second one waits for the lock and reads
 * the counters the first one's writes moved.
 *
 * Only growth is refused: a call that leaves the vault no larger than it found it always passes,
 * so a vault over its quota (after the limit was lowered, say) can still delete and shrink.
 *
 * @module
 */
import { LimitExceededError, type RuleViolation } from '../errors.js';
import type { SyncLimits } from './types.js';

/** A record's state as far as the quota goes: null when it is not live (absent or a tombstone). */
export type LiveBytes = number | null;

interface Crossing {
  path: string;
  recordId: string;
}

/** Usage of one vault while a call's writes are judged; see the module comment. */
export class VaultUsage {
  private records: number;
  private bytes: number;
  private recordsCrossedAt: Crossing | null = null;
  private bytesCrossedAt: Crossing | null = null;

  /**
   * @param start the vault's counters, read under the vault row lock
   * @param limits the service's limits
   */
  constructor(
    private readonly start: { recordCount: number; storedBytes: number },
    private readonly limits: Pick<SyncLimits, 'maxVaultRecords' | 'maxVaultBytes'>,
  ) {
    this.records = start.recordCount;
    this.bytes = start.storedBytes;
  }

  /** Counts one write that turns a record from `before` to `after` (each the live bytes, or null). */
  add(path: string, recordId: string, before: LiveBytes, after: LiveBytes): void {
    const records = (after === null ? 0 : 1) - (before === null ? 0 : 1);
    const bytes = (after ?? 0) - (before ?? 0);
    this.records += records;
    this.bytes += bytes;
    // The first write that grew the vault past a limit is the one the error names.
    if (records > 0 && this.records > this.limits.maxVaultRecords) this.recordsCrossedAt ??= { path, recordId };
    if (bytes > 0 && this.bytes > this.limits.maxVaultBytes) this.bytesCrossedAt ??= { path, recordId };
  }

  /**
   * @throws LimitExceededError naming the limit, the value the vault would reach and the first
   *   record that took it over, when the writes counted so far grow the vault past a limit
   */
  check(): void {
    const over: RuleViolation[] = [];
    // When a vault ends above a limit and above where it started, its last growing write left it
    // at least that large, so above the limit: add() recorded a crossing, and it is never null here.
    if (this.records > this.limits.maxVaultRecords && this.records > this.start.recordCount) {
      over.push({
        ...this.recordsCrossedAt!,
        rule: `the vault would hold ${this.records} live records; maxVaultRecords is ${this.limits.maxVaultRecords}`,
      });
    }
    if (this.bytes > this.limits.maxVaultBytes && this.bytes > this.start.storedBytes) {
      over.push({
        ...this.bytesCrossedAt!,
        rule: `the vault would hold ${this.bytes} bytes of live ciphertext; maxVaultBytes is ${this.limits.maxVaultBytes}`,
      });
    }
    if (over.length > 0) throw new LimitExceededError(over);
  }
}
