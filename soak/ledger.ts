/**
 * What happened during a soak run, as facts the devices write down while they work: every write the
 * server acknowledged, every write whose outcome a failure left unknown, every push whose response
 * "was lost" next to the answer of its re-send, every error that was not the typed error the
 * caller was promised, and the counters of the summary. The invariants judge these facts at the end.
 *
 * @module
 */

/** One write of one record, as a device sent it. `writeId` stays the same across re-sends of it. */
export interface WriteFact {
  user: string;
  recordId: string;
  /** The version the write was based on. */
  baseVersion: number;
  /** The version the write creates (`baseVersion + 1`), or, for an acknowledgement, the version the server reported. */
  version: number;
  writeId: string;
  /** `contentOf()` of what it writes. */
  content: string;
  device: string;
}

/** How a device learned that the server acknowledged a write. */
export type AckSource = 'response' | 'lost-response' | 'retry';

/** A write that the server reported in `applied`. */
export interface AckFact extends WriteFact {
  source: AckSource;
}

/** What one change of a push came back as. */
export type Outcome =
  | { kind: 'applied'; version: number }
  | { kind: 'conflict'; serverVersion: number | null; serverContent: string | null }
  | { kind: 'absent' }
  /** The call was refused with `ResyncRequiredError` (a purge passed the device's cursor): nothing written. */
  | { kind: 'resync' };

/** A push whose response the harness hid from the device, and the answer to its identical re-send. */
export interface LostPushFact {
  device: string;
  user: string;
  atomic: boolean;
  changes: { recordId: string; baseVersion: number; content: string; hidden: Outcome; retry: Outcome }[];
}

/** A call that failed with something other than a well-formed `TransientError`. */
export interface ErrorFact {
  device: string;
  call: 'push' | 'pull' | 'enableVault' | 'purge';
  constructorName: string;
  code: string | undefined;
  message: string;
  /** Why it breaks the promise: a raw error escaped, or the TransientError is malformed. */
  problem: string;
  /** The cause chain, outermost first: constructor name, code, message. */
  causes: string[];
}

/** A call refused with `ResyncRequiredError`, after which the device pulled everything again. */
export interface ResyncFact {
  device: string;
  user: string;
  call: 'push' | 'pull';
  /** The error's `reason`. */
  reason: string;
  /** The cursor the refused call carried. */
  cursor: string | null;
}

/**
 * A device that slept through a purge: it stopped with its cursor at `cursorSeq`, waited until the
 * vault's purge horizon (read by the harness) passed that cursor, then pushed edits from its stale
 * replica, some of records purged while it slept. The only right answer is `ResyncRequiredError`.
 */
export interface StaleWakeFact {
  device: string;
  user: string;
  /** The cursor's position and horizon when it fell asleep. */
  cursorSeq: number;
  /** The vault's `purged_seq` as the harness read it just before the push. */
  purgedSeq: number;
  /** Whether the push carried the stale cursor, or none (a device that lost it). */
  withCursor: boolean;
  /** Record ids purged while it slept, and how many of them the push carried. */
  purgedIds: number;
  carriedPurged: number;
  outcome: 'resync' | 'applied' | 'conflicts only' | 'gave up';
  /** What the push answered, when it was not refused. */
  detail: string;
}

/** Counters printed in the summary. */
export interface SoakCounters {
  /** Push calls that got an answer (re-sends included). */
  pushes: number;
  atomicPushes: number;
  /** Changes in those answered pushes. */
  changes: number;
  /** Changes reported applied (already-applied re-sends included). */
  applied: number;
  conflicts: number;
  /** Conflicts the device merged and pushed again. */
  merged: number;
  /** Edits dropped after too many merge rounds (the other devices kept winning). */
  abandoned: number;
  pulls: number;
  pulledChanges: number;
  /** Re-sends: of lost responses and after transient errors. */
  retries: number;
  lostResponses: number;
  transientErrors: number;
  /** Knex's "Connection Error" warnings (a pooled connection died). */
  poolWarnings: number;
  /** `purgeTombstones` calls answered, those that removed at least one tombstone, and tombstones removed. */
  purges: number;
  effectivePurges: number;
  purgedTombstones: number;
  /** Purges that failed with a TransientError (a fault hit them). */
  purgeTransientErrors: number;
  /** Full pulls after a `ResyncRequiredError`. */
  resyncs: number;
  /** Changes a device dropped because the push that carried them was refused for a resync. */
  droppedForResync: number;
}

/** The shared notebook of a run. */
export class Ledger {
  readonly acks: AckFact[] = [];
  readonly uncertain: WriteFact[] = [];
  readonly lostPushes: LostPushFact[] = [];
  readonly errors: ErrorFact[] = [];
  /** Answers about records the push did not carry (the service mixed up records or users). */
  readonly strays: string[] = [];
  /** Calls that failed with transient errors so often that the device gave up. */
  readonly givenUp: string[] = [];
  readonly resyncs: ResyncFact[] = [];
  readonly staleWakes: StaleWakeFact[] = [];
  readonly counters: SoakCounters = {
    pushes: 0,
    atomicPushes: 0,
    changes: 0,
    applied: 0,
    conflicts: 0,
    merged: 0,
    abandoned: 0,
    pulls: 0,
    pulledChanges: 0,
    retries: 0,
    lostResponses: 0,
    transientErrors: 0,
    poolWarnings: 0,
    purges: 0,
    effectivePurges: 0,
    purgedTombstones: 0,
    purgeTransientErrors: 0,
    resyncs: 0,
    droppedForResync: 0,
  };
  private readonly uncertainIds = new Set<string>();

  /** The server acknowledged `write` in `applied`. */
  ack(write: WriteFact, source: AckSource): void {
    this.acks.push({ ...write, source });
  }

  /** A push carrying `write` failed, so the write may or may not have been committed. */
  maybeWritten(write: WriteFact): void {
    if (this.uncertainIds.has(write.writeId)) return;
    this.uncertainIds.add(write.writeId);
    this.uncertain.push(write);
  }
}
