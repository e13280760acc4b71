/**
 * A simulated device: a local replica of one user's vault that reaches the server only through
 * `SyncService`. Each step is a random piece of work: create, edit and delete records (several
 * devices of a user share the same record ids, so their edits collide), pull, merge conflicts by
 * adopting the server's state and re-applying the edit on top of it, and re-send pushes whose
 * response "was lost" or that failed with a `TransientError`.
 *
 * The device writes down what it learns (in its own observation log and in the shared
 * {@link Ledger}); the invariants are judged at the end of the run.
 *
 * @module
 */
import { ResyncRequiredError, TransientError, VaultDbError } from '../src/errors.js';
import { parseCursor } from '../src/sync/cursor.js';
import type { SyncService } from '../src/sync/sync-service.js';
import type { Change, PullResult, PushInput, PushResult } from '../src/sync/types.js';
import type { Ledger, Outcome, WriteFact } from './ledger.js';
import { contentOf, makeCiphertext, originOf } from './payload.js';
import type { PurgeProbe } from './purges.js';
import { sleep, type Rng } from './random.js';

/** How a device behaves. */
export interface DeviceOptions {
  /** The record ids of the user's vault; every device of the user picks from the same list. */
  recordIds: readonly string[];
  /** Most changes in one push. */
  maxBatch: number;
  /** Share of steps that pull instead of pushing. */
  pullRate: number;
  /** Share of pushes sent with `atomic: true`. */
  atomicRate: number;
  /** Share of pushes whose response is hidden from the device and re-sent. */
  lostResponseRate: number;
  /** Share of edits of a live record that delete it. */
  deleteRate: number;
  /** Rounds of "merge and push again" before an edit that keeps conflicting is dropped. */
  maxMergeRounds: number;
  /** Attempts of one call before the device gives up on it (transient errors). */
  maxAttempts: number;
  /** Largest pause between steps, in ms. */
  thinkMs: number;
}

/** The device's copy of one record. */
export interface ReplicaEntry {
  version: number;
  deleted: boolean;
  /** `contentOf()` of the ciphertext. */
  content: string;
}

/** Something the device learned about a record, in the order it learned it. */
export interface Observation {
  /** From a pull, from its own acknowledged write, or from a conflict's server state. */
  source: 'pull' | 'ack' | 'conflict';
  recordId: string;
  version: number;
  content: string;
  /** The user index in the ciphertext's header; null for a tombstone, -1 for bytes that are no soak payload. */
  owner: number | null;
  /** The cursor the device sent with the call that brought it. */
  cursor: string | null;
  /** How many full resyncs the device had begun when it learned this (a resync pulls everything again). */
  epoch: number;
}

/** A call the service refused with `ResyncRequiredError`: nothing was written. */
class Refused {
  constructor(readonly error: ResyncRequiredError) {}
}

/** One change a device wants the server to apply. */
interface Intent {
  recordId: string;
  baseVersion: number;
  /** null for a delete. */
  ciphertext: Buffer | null;
  /** Stays the same when the same change is re-sent; a merge makes a new write. */
  writeId: string;
  content: string;
}

/** One simulated device. */
export class Device {
  /** Short name for reports, e.g. `u2.d1`. */
  readonly name: string;
  /** The device's copy of the vault, tombstones included. */
  readonly replica = new Map<string, ReplicaEntry>();
  /** Everything the device learned, in order. */
  readonly observations: Observation[] = [];
  /** The feed cursor, as the last pull or push returned it. */
  cursor: string | null = null;
  private writes = 0;
  private epoch = 0;

  constructor(
    private readonly sync: Pick<SyncService, 'push' | 'pull'>,
    /** The user id the device signs in as. */
    readonly userId: string,
    /** The user's index (written into every ciphertext header). */
    readonly userIndex: number,
    /** The device's index within its user. */
    readonly deviceIndex: number,
    private readonly rng: Rng,
    private readonly ledger: Ledger,
    private readonly options: DeviceOptions,
  ) {
    this.name = `u${userIndex}.d${deviceIndex}`;
  }

  /** One random piece of work. */
  async step(): Promise<void> {
    if (this.rng.chance(this.options.pullRate)) await this.pullToEnd();
    else await this.pushSomething();
    if (this.options.thinkMs > 0) await sleep(this.rng.int(0, this.options.thinkMs));
  }

  /** Pulls until the feed has nothing more; false when the device gave up on a call. */
  async pullToEnd(): Promise<boolean> {
    for (;;) {
      const from = this.cursor;
      const limit = this.rng.int(1, 60);
      const page = await this.withRetry<PullResult>('pull', () => this.sync.pull(this.userId, { cursor: from, limit }), () => {}, from);
      if (!page) return false;
      if (page instanceof Refused) return this.resync();
      this.ledger.counters.pulls++;
      this.ledger.counters.pulledChanges += page.changes.length;
      for (const change of page.changes) this.observe('pull', change.recordId, change.version, change.deleted, change.ciphertext, from);
      this.cursor = page.cursor;
      if (!page.hasMore) return true;
    }
  }

  /**
   * What a client does after `ResyncRequiredError`: forget the cursor, pull the whole vault from
   * the start, and drop from the replica every record the server no longer lists (tombstones
   * purged since, and records deleted and purged before the device ever saw the deletion). A purge
   * during the resync refuses its next page; then it starts over.
   *
   * @returns false when the device gave up on a call
   */
  async resync(): Promise<boolean> {
    for (let round = 1; round <= 20; round++) {
      this.ledger.counters.resyncs++;
      this.epoch++;
      this.cursor = null;
      const listed = new Set<string>();
      let refused = false;
      for (;;) {
        const from: string | null = this.cursor;
        const limit = this.rng.int(1, 60);
        const page: PullResult | Refused | null = await this.withRetry<PullResult>('pull', () => this.sync.pull(this.userId, { cursor: from, limit }), () => {}, from);
        if (!page) return false;
        if (page instanceof Refused) {
          refused = true;
          break;
        }
        this.ledger.counters.pulls++;
        this.ledger.counters.pulledChanges += page.changes.length;
        for (const change of page.changes) {
          this.observe('pull', change.recordId, change.version, change.deleted, change.ciphertext, from);
          listed.add(change.recordId);
        }
        this.cursor = page.cursor;
        if (!page.hasMore) break;
      }
      if (refused) continue;
      for (const recordId of [...this.replica.keys()]) if (!listed.has(recordId)) this.replica.delete(recordId);
      return true;
    }
    this.ledger.givenUp.push(`${this.name}: 20 resyncs in a row were refused by purges`);
    return false;
  }

  /**
   * Sleeps through a purge (issue #12.1): pulls to the end, keeps that cursor, and waits until the
   * harness sees that a purge removed a deletion written after it (the vault's `purged_seq` passed
   * the cursor). Then it wakes and pushes edits from its stale replica, records purged while it
   * slept among them, with the stale cursor or (one wake in three) none. The service must refuse
   * the push with `ResyncRequiredError`; anything it applies or merely reports as conflicts is
   * written down as a broken promise. Then the device resyncs and goes on.
   *
   * @param keepWaiting false once the run is over
   * @param maxSleepMs how long to wait for a purge before going on without one
   */
  async sleepThroughPurge(probe: PurgeProbe, keepWaiting: () => boolean, maxSleepMs: number): Promise<void> {
    if (!(await this.pullToEnd()) || this.cursor === null) return;
    const asleep = parseCursor(this.cursor);
    const since = Math.max(asleep.seq, asleep.horizon);
    const until = Date.now() + maxSleepMs;
    let seen: { purgedSeq: number; purgedIds: string[] } | null = null;
    probe.sleeping(this.userId, true);
    try {
      while (seen === null && keepWaiting() && Date.now() < until) {
        await sleep(100);
        try {
          const look = await probe.look(this.userId, since);
          if (look.purgedSeq > since && look.purgedIds.length > 0) seen = look;
        } catch {
          // The harness's own query failed under a fault or a restart: look again.
        }
      }
    } finally {
      probe.sleeping(this.userId, false);
    }
    if (seen === null) return;
    const purged = this.rng.sample(seen.purgedIds, Math.min(seen.purgedIds.length, Math.max(1, this.options.maxBatch - 1)));
    const others = this.rng.sample(this.options.recordIds.filter((id) => !purged.includes(id)), 1);
    const intents = [...purged, ...others].map((id) => this.intentFor(id));
    const withCursor = !this.rng.chance(1 / 3);
    const cursor = withCursor ? this.cursor : null;
    const input: PushInput = { changes: intents.map(toChange), cursor };
    const result = await this.send(input, intents);
    const fact = { device: this.name, user: this.userId, cursorSeq: since, purgedSeq: seen.purgedSeq, withCursor, purgedIds: seen.purgedIds.length, carriedPurged: purged.length };
    if (result instanceof Refused) {
      this.ledger.staleWakes.push({ ...fact, outcome: 'resync', detail: result.error.reason });
      this.ledger.counters.droppedForResync += intents.length;
      await this.resync();
      return;
    }
    if (result === null) {
      this.ledger.staleWakes.push({ ...fact, outcome: 'gave up', detail: '' });
      return;
    }
    const detail = `applied ${result.applied.map((a) => `${a.recordId}@v${a.version}`).join(' ') || 'nothing'}; conflicts ${result.conflicts.map((c) => `${c.recordId} (${c.reason})`).join(' ') || 'none'}`;
    this.ledger.staleWakes.push({ ...fact, outcome: result.applied.length > 0 ? 'applied' : 'conflicts only', detail });
    // Whatever the service did, the ledger must know it, or the other invariants judge a false history.
    this.absorb(result, intents, 'response', this.options.maxMergeRounds, cursor);
  }

  private async pushSomething(): Promise<void> {
    const ids = this.rng.sample(this.options.recordIds, this.rng.int(1, this.options.maxBatch));
    const intents = ids.map((id) => this.intentFor(id));
    await this.pushIntents(intents, this.rng.chance(this.options.atomicRate), this.rng.chance(this.options.lostResponseRate));
  }

  /** Edit or delete a record the device holds live; create (or bring back) one it doesn't. */
  private intentFor(recordId: string): Intent {
    const known = this.replica.get(recordId);
    if (known && !known.deleted) {
      return this.rng.chance(this.options.deleteRate) ? this.deleteIntent(recordId, known.version) : this.upsertIntent(recordId, known.version);
    }
    return this.upsertIntent(recordId, known?.version ?? 0);
  }

  private upsertIntent(recordId: string, baseVersion: number): Intent {
    const write = ++this.writes;
    const ciphertext = makeCiphertext(this.rng, { user: this.userIndex, device: this.deviceIndex, write });
    return { recordId, baseVersion, ciphertext, writeId: `${this.name}#${write}`, content: contentOf(ciphertext, false) };
  }

  private deleteIntent(recordId: string, baseVersion: number): Intent {
    const write = ++this.writes;
    return { recordId, baseVersion, ciphertext: null, writeId: `${this.name}#${write}`, content: contentOf(null, true) };
  }

  /**
   * Pushes `intents`, then merges what conflicted and pushes again, for a few rounds. When `lose`
   * is set, the first response is hidden from the device (the harness keeps it) and the identical
   * push is sent again, as a client does when the network dropped the answer.
   */
  private async pushIntents(intents: Intent[], atomic: boolean, lose: boolean): Promise<void> {
    let batch = intents;
    let loseNext = lose;
    for (let round = 0; batch.length > 0; round++) {
      const input: PushInput = { changes: batch.map(toChange), atomic, cursor: this.cursor };
      const sent = batch;
      const first = await this.send(input, sent);
      if (!first) return;
      if (first instanceof Refused) {
        // Refused whole: nothing was written. A client resyncs, then redoes its edits on the new state.
        this.ledger.counters.droppedForResync += sent.length;
        await this.resync();
        return;
      }
      let result = first;
      let source: 'response' | 'retry' = 'response';
      if (loseNext) {
        loseNext = false;
        this.ledger.counters.lostResponses++;
        // The server did acknowledge these, even if the device never heard of it.
        this.recordAcks(first, sent, 'lost-response');
        await sleep(this.rng.int(0, 10));
        this.ledger.counters.retries++;
        const again = await this.send(input, sent);
        if (!again) return;
        this.ledger.lostPushes.push({
          device: this.name,
          user: this.userId,
          atomic,
          changes: sent.map((i) => ({
            recordId: i.recordId,
            baseVersion: i.baseVersion,
            content: i.content,
            hidden: outcomeOf(first, i.recordId),
            retry: again instanceof Refused ? { kind: 'resync' } : outcomeOf(again, i.recordId),
          })),
        });
        if (again instanceof Refused) {
          // A purge passed the cursor between the two sends: the first answer is all there is.
          this.absorb(first, sent, 'response', this.options.maxMergeRounds, input.cursor ?? null);
          await this.resync();
          return;
        }
        result = again;
        source = 'retry';
      }
      batch = this.absorb(result, sent, source, round, input.cursor ?? null);
    }
  }

  /** One push call, re-sent after transient failures. */
  private async send(input: PushInput, batch: Intent[]): Promise<PushResult | Refused | null> {
    const result = await this.withRetry(
      'push',
      () => this.sync.push(this.userId, input),
      () => {
        // The call failed: each of its writes may or may not have been committed. (A create's
        // version depends on the vault's version floor; the invariants know that.)
        for (const intent of batch) this.ledger.maybeWritten(this.fact(intent, intent.baseVersion + 1));
      },
      input.cursor ?? null,
    );
    if (result && !(result instanceof Refused)) {
      this.ledger.counters.pushes++;
      this.ledger.counters.changes += batch.length;
      if (input.atomic) this.ledger.counters.atomicPushes++;
    }
    return result;
  }

  private recordAcks(result: PushResult, batch: Intent[], source: 'response' | 'lost-response' | 'retry'): void {
    const byId = new Map(batch.map((i) => [i.recordId, i]));
    for (const applied of result.applied) {
      const intent = byId.get(applied.recordId);
      if (intent) this.ledger.ack(this.fact(intent, applied.version), source);
    }
  }

  /**
   * Takes a push's answer into the replica: applied changes become the new local state, conflicts
   * adopt the server's state and re-apply the edit on top of it.
   *
   * @returns the changes to push in the next round
   */
  private absorb(result: PushResult, batch: Intent[], source: 'response' | 'retry', round: number, sentCursor: string | null): Intent[] {
    const byId = new Map(batch.map((i) => [i.recordId, i]));
    const handled = new Set<string>();
    const canMerge = round < this.options.maxMergeRounds;
    const next: Intent[] = [];
    for (const applied of result.applied) {
      const intent = byId.get(applied.recordId);
      if (!intent) {
        this.ledger.strays.push(`${this.name}: push answered "applied" for record ${applied.recordId}, which it did not carry`);
        continue;
      }
      handled.add(intent.recordId);
      this.ledger.counters.applied++;
      this.ledger.ack(this.fact(intent, applied.version), source);
      this.observe('ack', intent.recordId, applied.version, intent.ciphertext === null, intent.ciphertext, sentCursor);
    }
    for (const conflict of result.conflicts) {
      const intent = byId.get(conflict.recordId);
      if (!intent) {
        this.ledger.strays.push(`${this.name}: push answered a conflict for record ${conflict.recordId}, which it did not carry`);
        continue;
      }
      handled.add(intent.recordId);
      this.ledger.counters.conflicts++;
      const server = conflict.server;
      if (server) this.observe('conflict', server.recordId, server.version, server.deleted, server.ciphertext, sentCursor);
      if (!canMerge) {
        this.ledger.counters.abandoned++;
        continue;
      }
      const serverVersion = server?.version ?? 0;
      if (intent.ciphertext === null) {
        // A delete that meets a tombstone is already done; otherwise delete what the server holds now.
        if (server && !server.deleted) next.push(this.deleteIntent(intent.recordId, serverVersion));
      } else {
        // "Merge": the edit re-applied on top of the server's state, encrypted afresh.
        next.push(this.upsertIntent(intent.recordId, serverVersion));
      }
      this.ledger.counters.merged++;
    }
    for (const intent of batch) {
      if (handled.has(intent.recordId)) continue;
      // An atomic push withdrawn because another of its changes conflicted: send it again as it was.
      if (canMerge) next.push(intent);
      else this.ledger.counters.abandoned++;
    }
    this.cursor = result.cursor;
    return next;
  }

  /** Writes down what the device learned and updates the replica when it is newer. */
  private observe(source: Observation['source'], recordId: string, version: number, deleted: boolean, ciphertext: Uint8Array | null, cursor: string | null): void {
    const content = contentOf(ciphertext, deleted);
    const owner = deleted || ciphertext === null ? null : (originOf(ciphertext)?.user ?? -1);
    this.observations.push({ source, recordId, version, content, owner, cursor, epoch: this.epoch });
    const known = this.replica.get(recordId);
    if (!known || version >= known.version) this.replica.set(recordId, { version, deleted, content });
  }

  private fact(intent: Intent, version: number): WriteFact {
    return { user: this.userId, recordId: intent.recordId, baseVersion: intent.baseVersion, version, writeId: intent.writeId, content: intent.content, device: this.name };
  }

  /**
   * Runs a call, re-sending it after failures. A `TransientError` is the promised answer to a
   * fault; anything else (a raw driver error, a malformed TransientError, another typed error for
   * input that is valid) is written down as a broken promise. Raw errors are re-sent too (their
   * outcome is unknown), so one bug does not hide the rest of the run; a typed non-retryable error
   * ends the call.
   *
   * A `ResyncRequiredError` is no failure but the service's answer to a cursor that a purge has
   * passed: it promises that nothing was written, and the caller resyncs.
   *
   * @returns null when the device gave up after `maxAttempts`; {@link Refused} for a resync
   */
  private async withRetry<T>(call: 'push' | 'pull', run: () => Promise<T>, onFailure: () => void, cursor: string | null): Promise<T | Refused | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (error instanceof ResyncRequiredError) {
          this.ledger.resyncs.push({ device: this.name, user: this.userId, call, reason: error.reason, cursor });
          return new Refused(error);
        }
        onFailure();
        this.inspectFailure(call, error);
        // A typed, non-retryable error promises that nothing was written: re-sending can't help.
        if (error instanceof VaultDbError && !error.retryable) return null;
        if (attempt >= this.options.maxAttempts) {
          const last = causeChain(error).slice(0, 3).join(' <- ');
          this.ledger.givenUp.push(`${this.name}: a ${call} failed ${attempt} times in a row, last with ${last}`);
          return null;
        }
        this.ledger.counters.retries++;
        // A refusal that says when to come back (the per-vault gate) is taken at its word, as a client would.
        const hint = error instanceof TransientError ? error.retryAfterMs : undefined;
        await sleep(hint ? this.rng.int(Math.ceil(hint / 4), hint) : this.rng.int(1, Math.min(100, 2 ** attempt)));
      }
    }
  }

  private inspectFailure(call: 'push' | 'pull', error: unknown): void {
    const e = error as { constructor?: { name?: string }; code?: unknown; message?: unknown; retryable?: unknown; cause?: unknown };
    let problem: string | null = null;
    if (error instanceof TransientError) {
      this.ledger.counters.transientErrors++;
      if (error.code !== 'transient' || error.retryable !== true) problem = 'TransientError without code "transient" and retryable true';
      else if (error.cause === undefined || error.cause === null) problem = 'TransientError without a cause';
    } else if (error instanceof VaultDbError) {
      problem = `a non-retryable ${error.code} for a valid ${call} (a fault was classified as permanent)`;
    } else {
      problem = 'a raw error escaped the service (not a VaultDbError)';
    }
    if (problem === null) return;
    this.ledger.errors.push({
      device: this.name,
      call,
      constructorName: e?.constructor?.name ?? typeof error,
      code: typeof e?.code === 'string' ? e.code : undefined,
      message: typeof e?.message === 'string' ? e.message : String(error),
      problem,
      causes: causeChain(e?.cause),
    });
  }
}

function toChange(intent: Intent): Change {
  return intent.ciphertext === null
    ? { recordId: intent.recordId, baseVersion: intent.baseVersion, deleted: true }
    : { recordId: intent.recordId, baseVersion: intent.baseVersion, ciphertext: intent.ciphertext };
}

function outcomeOf(result: PushResult, recordId: string): Outcome {
  const applied = result.applied.find((a) => a.recordId === recordId);
  if (applied) return { kind: 'applied', version: applied.version };
  const conflict = result.conflicts.find((c) => c.recordId === recordId);
  if (conflict) {
    return {
      kind: 'conflict',
      serverVersion: conflict.server?.version ?? null,
      serverContent: conflict.server ? contentOf(conflict.server.ciphertext, conflict.server.deleted) : null,
    };
  }
  return { kind: 'absent' };
}

function causeChain(cause: unknown): string[] {
  const out: string[] = [];
  for (let c = cause; c !== undefined && c !== null && out.length < 6; c = (c as { cause?: unknown }).cause) {
    const e = c as { constructor?: { name?: string }; name?: unknown; code?: unknown; message?: unknown };
    out.push(`${e.constructor?.name ?? typeof c}${typeof e.name === 'string' && e.name !== e.constructor?.name ? `(${e.name})` : ''} code=${String(e.code)}: ${String(e.message)}`);
  }
  return out;
}
