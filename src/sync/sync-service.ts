/**
 * The sync service: devices push batches of encrypted changes and pull what other devices wrote.
 *
 * @module
 */
import { LockMode, ref, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Vault } from '../entities/vault.js';
import { VaultRecord } from '../entities/vault-record.js';
import { VaultAlreadyEnabledError, VaultNotFoundError, VersionConflictError } from '../errors.js';
import { encodeCursor, parseCursor, resumePosition } from './cursor.js';
import { lockVaultAndReserve, purgeVaultTombstones, readFeedPage } from './feed.js';
import { validateEnable, validatePull, validatePurge, validatePush, validateRewrap, validateRotate, validateUserId } from './input.js';
import { judge } from './judge.js';
import { resolveSyncOptions } from './options.js';
import { classifyFailure } from './transient.js';
import { VaultGate } from './vault-gate.js';
import { CLAIM_LIFETIME_SECONDS, presentClaim, signClaim } from './claim.js';
import { ClaimKeySource, claimRefused } from './claim-key.js';
import {
  type Conflict,
  type EnableVaultInput,
  type PullInput,
  type PullResult,
  type PushInput,
  type PushResult,
  type RecordState,
  type RewrapKeyInput,
  type RotateKeyInput,
  type SyncLimits,
  type SyncServiceOptions,
  type VaultInfo,
} from './types.js';

const EMPTY = Buffer.alloc(0);

/**
 * Applies devices' changes to a user's vault and serves them back as a gap-free feed.
 *
 * Each call forks the EntityManager it was built with and runs one transaction of its own, so one
 * instance serves any number of concurrent callers. Every call that writes records first locks the
 * vault row, which serializes writers of one vault (cheap: they are one person's devices) and
 * makes version checks and feed positions race-free. See the README's "Sync protocol".
 *
 * @example
 * ```ts
 * const sync = new SyncService(orm.em);
 * const { applied, conflicts, cursor } = await sync.push(userId, {
 *   changes: [{ recordId: 'b1', baseVersion: 0, ciphertext }],
 *   cursor: lastCursor,
 * });
 * ```
 */
export class SyncService {
  /** The limits in force (defaults merged with the options). */
  readonly limits: Readonly<SyncLimits>;
  private readonly lockTimeoutMs: number;
  private readonly gate: VaultGate;
  private readonly claimKey: ClaimKeySource;

  /**
   * @param em any EntityManager of an ORM initialised with this package's config; it is forked per call
   * @param options limits, the lock wait, the per-vault share of the pool and the claim key
   * @throws ConfigurationError naming every option that is unknown or out of range, or a malformed `claimKey` (or `VAULT_DB_CLAIM_KEY`)
   */
  constructor(
    private readonly em: EntityManager,
    options: SyncServiceOptions = {},
  ) {
    const resolved = resolveSyncOptions(options);
    this.limits = resolved.limits;
    this.lockTimeoutMs = resolved.lockTimeoutMs;
    // Keyed on the driver, which owns the pool: services on one ORM share the per-vault counts.
    this.gate = new VaultGate(em.getDriver(), resolved.maxConcurrentCallsPerVault);
    this.claimKey = new ClaimKeySource(em, options.claimKey, process.env);
  }

  /**
   * Creates the user's vault with its key envelope.
   * @throws VaultAlreadyEnabledError | ValidationError
   */
  async enableVault(userId: string, input: EnableVaultInput): Promise<VaultInfo> {
    const owner = validateUserId(userId);
    const valid = validateEnable(input);
    return this.transaction(owner, async (em) => {
      if (await em.count(Vault, { userId: owner })) throw new VaultAlreadyEnabledError(owner);
      const vault = new Vault(owner, valid, valid.deviceFingerprint);
      try {
        await em.persistAndFlush(vault);
      } catch (error) {
        // Two devices enabling at once: the unique user_id lets exactly one win.
        if (error instanceof UniqueConstraintViolationException) throw new VaultAlreadyEnabledError(owner);
        throw error;
      }
      return toVaultInfo(await em.refreshOrFail(vault));
    });
  }

  /** The user's key envelope, or null when the user has no vault. */
  async getVault(userId: string): Promise<VaultInfo | null> {
    const owner = validateUserId(userId);
    return this.transaction(owner, async (em) => {
      const vault = await em.findOne(Vault, { userId: owner });
      return vault ? toVaultInfo(vault) : null;
    });
  }

  /**
   * Applies a batch of changes in one transaction and one flush of the unit of work. Changes whose
   * `baseVersion` is stale come back as conflicts with the server's state; with `atomic: true`,
   * any conflict means nothing is applied. Re-sending a push whose response was lost is safe.
   *
   * @throws VaultNotFoundError | ValidationError | LimitExceededError | ResyncRequiredError | TransientError
   */
  async push(userId: string, input: PushInput): Promise<PushResult> {
    const owner = validateUserId(userId);
    const { changes, atomic, cursor } = validatePush(input, this.limits);
    return this.transaction(owner, async (em) => {
      const head = await lockVaultAndReserve(em, owner, changes.length);
      if (!head) throw new VaultNotFoundError(owner);
      // Purged tombstones don't stop a push: its cursor comes back unchanged and the next pull resyncs.
      const since = resumePosition(cursor === null ? null : parseCursor(cursor), head, { unpurged: false });

      const current = changes.length === 0 ? [] : await em.find(VaultRecord, { vault: head.vaultId, recordId: { $in: changes.map((c) => c.recordId) } });
      const byId = new Map(current.map((r) => [r.recordId, r]));
      const applied: PushResult['applied'] = [];
      const confirmed: PushResult['applied'] = [];
      const conflicts: Conflict[] = [];
      // Deferred until every change is judged: em.transactional flushes whatever is dirty on
      // commit, so a rejected atomic push must not have touched a managed entity.
      const writes: (() => void)[] = [];
      let seq = head.lastSeq;
      for (const change of changes) {
        const record = byId.get(change.recordId);
        const verdict = judge(change, record);
        if (verdict.kind === 'conflict') {
          conflicts.push({ recordId: change.recordId, reason: verdict.reason, server: record ? toRecordState(record) : null });
        } else if (verdict.kind === 'already_applied') {
          applied.push({ recordId: change.recordId, version: verdict.version });
          confirmed.push({ recordId: change.recordId, version: verdict.version });
        } else {
          const position = ++seq;
          applied.push({ recordId: change.recordId, version: change.baseVersion + 1 });
          writes.push(() => {
            const ciphertext = change.ciphertext ?? EMPTY;
            if (record) {
              record.ciphertext = ciphertext;
              record.deleted = change.ciphertext === null;
              record.seq = position;
            } else {
              em.persist(new VaultRecord(ref(Vault, head.vaultId), owner, change.recordId, ciphertext, position));
            }
          });
        }
      }

      // Past this push's positions only when the device had seen everything before them; positions
      // reserved but not written are empty, so skipping them skips nothing.
      const cursorOut = encodeCursor(head.vaultId, since === head.lastSeq ? head.lastSeq + changes.length : since);
      if (atomic && conflicts.length > 0) {
        // Nothing of this push is written; changes an earlier attempt already applied stay reported.
        return { applied: confirmed, conflicts, cursor: cursorOut };
      }
      for (const write of writes) write();
      await em.flush();
      return { applied, conflicts, cursor: cursorOut };
    });
  }

  /**
   * Returns the changes after `cursor`, tombstones included, in commit order, paged by `limit`
   * and `maxBytes`. Keep pulling with the returned cursor while `hasMore` is true.
   *
   * @throws VaultNotFoundError | ResyncRequiredError | ValidationError | LimitExceededError
   */
  async pull(userId: string, input: PullInput = {}): Promise<PullResult> {
    const owner = validateUserId(userId);
    const { cursor, limit, maxBytes } = validatePull(input, this.limits);
    return this.transaction(owner, async (em) => {
      // The cursor's vault is only known after the read; a foreign cursor wastes one page read.
      const position = cursor === null ? null : parseCursor(cursor);
      const page = await readFeedPage(em, owner, position?.seq ?? 0, limit, maxBytes);
      if (!page) throw new VaultNotFoundError(owner);
      resumePosition(position, page, { unpurged: true });
      const last = page.changes.at(-1)?.seq;
      const next = page.hasMore ? (last as number) : page.lastSeq;
      return {
        changes: page.changes.map(({ seq: _seq, ...state }) => state),
        cursor: encodeCursor(page.vaultId, next),
        hasMore: page.hasMore,
      };
    });
  }

  /**
   * Replaces the key envelope (a password or KDF change) when `expectedVersion` is current.
   * Records are untouched: the vault key itself is unchanged.
   *
   * @throws VaultNotFoundError | VersionConflictError | ValidationError
   */
  async rewrapKey(userId: string, input: RewrapKeyInput): Promise<VaultInfo> {
    const owner = validateUserId(userId);
    const valid = validateRewrap(input);
    return this.transaction(owner, async (em) => {
      const vault = await em.findOne(Vault, { userId: owner }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!vault) throw new VaultNotFoundError(owner);
      if (vault.version !== valid.expectedVersion) throw VersionConflictError.envelope(valid.expectedVersion, vault.version);
      vault.replaceEnvelope(valid);
      await em.flush();
      return toVaultInfo(await em.refreshOrFail(vault));
    });
  }

  /**
   * Replaces the vault key: the new envelope and every live record re-encrypted, in one
   * transaction. Accepted only when `records` names exactly the live records at their current
   * versions; otherwise nothing changes.
   *
   * @throws VaultNotFoundError | VersionConflictError | ValidationError | LimitExceededError
   */
  async rotateKey(userId: string, input: RotateKeyInput): Promise<VaultInfo> {
    const owner = validateUserId(userId);
    const valid = validateRotate(input, this.limits);
    return this.transaction(owner, async (em) => {
      const head = await lockVaultAndReserve(em, owner, valid.records.length);
      if (!head) throw new VaultNotFoundError(owner);
      const vault = await em.findOneOrFail(Vault, { id: head.vaultId });
      if (vault.version !== valid.expectedVersion) throw VersionConflictError.envelope(valid.expectedVersion, vault.version);

      const live = await em.find(VaultRecord, { vault: head.vaultId, deleted: false });
      const byId = new Map(live.map((r) => [r.recordId, r]));
      const submitted = new Set(valid.records.map((r) => r.recordId));
      const missing = live.filter((r) => !submitted.has(r.recordId)).map((r) => r.recordId);
      const unknown = valid.records.filter((r) => !byId.has(r.recordId)).map((r) => r.recordId);
      const stale = valid.records.filter((r) => byId.has(r.recordId) && byId.get(r.recordId)?.version !== r.baseVersion).map((r) => r.recordId);
      if (missing.length + unknown.length + stale.length > 0) {
        throw new VersionConflictError(rotationMismatch(missing, unknown, stale), vault.version);
      }

      let seq = head.lastSeq;
      for (const submittedRecord of valid.records) {
        const record = byId.get(submittedRecord.recordId) as VaultRecord;
        record.ciphertext = submittedRecord.ciphertext;
        record.seq = ++seq;
      }
      vault.replaceEnvelope(valid);
      await em.flush();
      return toVaultInfo(await em.refreshOrFail(vault));
    });
  }

  /**
   * Deletes the user's vault and every record in it (the foreign key's ON DELETE CASCADE).
   * @throws VaultNotFoundError
   */
  async disableVault(userId: string): Promise<{ deletedRecords: number }> {
    const owner = validateUserId(userId);
    return this.transaction(owner, async (em) => {
      const vault = await em.findOne(Vault, { userId: owner }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!vault) throw new VaultNotFoundError(owner);
      const deletedRecords = await em.count(VaultRecord, { vault });
      em.remove(vault);
      await em.flush();
      return { deletedRecords };
    });
  }

  /**
   * Removes tombstones last written before `olderThan`, for one user or for all. Cursors that had
   * not yet seen a purged deletion get `ResyncRequiredError` on their next pull, so no device
   * silently misses a delete. Each vault is purged in a transaction of its own.
   *
   * Purging every vault reads all vaults, so under row-level security it must run as a role that
   * may see them (see the README); with `userId` it runs as the user like any other call.
   */
  async purgeTombstones(input: { olderThan: Date; userId?: string }): Promise<{ purged: number }> {
    const { olderThan, userId } = validatePurge(input);
    const owners = userId !== null ? [userId] : await this.allVaultOwners();
    let purged = 0;
    for (const owner of owners) {
      purged += await this.transaction(owner, (em) => purgeVaultTombstones(em, owner, olderThan));
    }
    return { purged };
  }

  private async allVaultOwners(): Promise<string[]> {
    const rows = await this.em.fork().getConnection().execute<{ user_id: string }[]>('select user_id from vaults order by user_id');
    return rows.map((r) => r.user_id);
  }

  /**
   * Runs `work` in a transaction of its own on a fresh fork, with the caller's user id, a claim
   * signed for it, and the lock wait set for that transaction only (they vanish at commit, so
   * pooled connections never carry one user's setting into another's call). Row-level security
   * admits the user's rows only if the database accepts the claim, so a refused claim stops the
   * call here rather than letting it run on an empty view of the vault.
   */
  private async transaction<T>(userId: string, work: (em: EntityManager) => Promise<T>): Promise<T> {
    // The gate comes first: a refused call never waits for, or holds, a pooled connection.
    return this.gate.run(userId, async () => {
      try {
        for (let attempt = 1; ; attempt++) {
          const claim = signClaim(await this.claimKey.get(), userId, Math.floor(Date.now() / 1000) + CLAIM_LIFETIME_SECONDS);
          let refused = false;
          try {
            return await this.em.fork().transactional(async (em) => {
              const rejection = await presentClaim(em, userId, claim, this.lockTimeoutMs);
              if (rejection) {
                refused = true;
                throw claimRefused(rejection, this.claimKey.origin);
              }
              return work(em);
            });
          } catch (error) {
            // A key read from the database may have been rotated since: nothing was done yet, so
            // read it again and retry once. A configured key is wrong until someone fixes it.
            if (refused && attempt === 1 && this.claimKey.refused()) continue;
            throw error;
          }
        }
      } catch (error) {
        throw classifyFailure(error);
      }
    });
  }
}

function rotationMismatch(missing: string[], unknown: string[], stale: string[]): string {
  const list = (ids: string[]) => ids.slice(0, 5).map((id) => `"${id}"`).join(', ') + (ids.length > 5 ? ` and ${ids.length - 5} more` : '');
  const parts = [
    missing.length ? `live records not re-encrypted: ${list(missing)}` : '',
    unknown.length ? `records that are not live: ${list(unknown)}` : '',
    stale.length ? `records whose baseVersion is not current: ${list(stale)}` : '',
  ].filter(Boolean);
  return `Key rotation must re-encrypt exactly the live records at their current versions; ${parts.join('; ')}. Nothing was changed; pull and retry.`;
}

/** The server's state of a record, as conflicts and pulls report it. */
export function toRecordState(record: VaultRecord): RecordState {
  return {
    recordId: record.recordId,
    version: record.version,
    deleted: record.deleted,
    ciphertext: record.deleted ? null : record.ciphertext,
    updatedAt: record.updatedAt,
  };
}

function toVaultInfo(vault: Vault): VaultInfo {
  return {
    userId: vault.userId,
    wrappedKey: vault.wrappedKey,
    salt: vault.salt,
    kdfParams: vault.kdfParams,
    deviceFingerprint: vault.deviceFingerprint,
    version: vault.version,
    enabledAt: vault.enabledAt,
    updatedAt: vault.updatedAt,
  };
}
