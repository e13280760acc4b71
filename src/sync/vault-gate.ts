/**
 * A fair share of the connection pool per vault. Every call of a vault's writers queues on the
 * vault's row lock, holding a pooled connection while it waits (up to `lockTimeoutMs`). Without a
 * bound, a dozen queued pushes of one user take every connection, and every other user's call
 * waits behind them. The gate counts the calls of each vault that are in flight and refuses one
 * more at once, with a retry hint, before it takes a connection.
 *
 * The count is per process and per ORM (its driver, hence its pool), shared by every
 * `SyncService` built on it. Several processes each have their own count; the database's vault
 * lock, not the gate, is what keeps concurrent writes correct.
 *
 * @module
 */
import { TransientError } from '../errors.js';

/**
 * The retry hint of a refused call, in ms. Calls of one vault usually finish within tens of ms;
 * if the vault is stalled (its lock held), the retry is refused again at no database cost.
 */
export const GATE_RETRY_AFTER_MS = 250;

/** In-flight calls by vault owner, one table per pool. */
const inFlightByPool = new WeakMap<object, Map<string, number>>();

/** Limits the calls of each vault in flight on one pool. */
export class VaultGate {
  private readonly inFlight: Map<string, number>;

  /**
   * @param pool the object that stands for the connection pool (the ORM's driver); gates built
   *   on the same object share their counts
   * @param maxPerVault most calls of one vault in flight at once
   */
  constructor(
    pool: object,
    readonly maxPerVault: number,
  ) {
    let table = inFlightByPool.get(pool);
    if (!table) inFlightByPool.set(pool, (table = new Map()));
    this.inFlight = table;
  }

  /**
   * Runs `work` as one of `userId`'s calls in flight, or throws {@link TransientError} (with
   * `retryAfterMs`) at once when `maxPerVault` of them already are.
   */
  async run<T>(userId: string, work: () => Promise<T>): Promise<T> {
    const current = this.inFlight.get(userId) ?? 0;
    if (current >= this.maxPerVault) {
      // Like every TransientError, it says what failed in its cause.
      const cause = new Error(`maxConcurrentCallsPerVault (${this.maxPerVault}) calls of this vault were in flight`);
      cause.name = 'VaultGateRefusal';
      throw new TransientError(
        `Too many calls for the vault of user "${userId}" are in flight on this server (${current}, the limit is ${this.maxPerVault}); nothing was done, retry in about ${GATE_RETRY_AFTER_MS} ms.`,
        cause,
        { retryAfterMs: GATE_RETRY_AFTER_MS },
      );
    }
    this.inFlight.set(userId, current + 1);
    try {
      return await work();
    } finally {
      const left = (this.inFlight.get(userId) ?? 1) - 1;
      if (left > 0) this.inFlight.set(userId, left);
      else this.inFlight.delete(userId);
    }
  }

  /** How many calls of `userId`'s vault are in flight now (for tests and metrics). */
  inFlightFor(userId: string): number {
    return this.inFlight.get(userId) ?? 0;
  }
}
