/**
 * The sync service: devices push batches of encrypted changes and pull what other devices wrote.
 *
 * @module
 */
import { LockMode, UniqueConstraintViolationException, type Ref } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Vault } from '../entities/vault.js';
import { VaultRecord } from '../entities/vault-record.js';
import { VaultDbDriver } from '../records-driver.js';
import {
  ConfigurationError,
  LimitExceededError,
  PurgeIncompleteError,
  RotationNotFoundError,
  StaleKeyError,
  TransientError,
  VaultAlreadyEnabledError,
  VaultNotFoundError,
  VersionConflictError,
  type PurgeReport,
  type RotationMismatch,
} from '../errors.js';
import { encodeCursor, parseCursor, resumePosition } from './cursor.js';
import { lockVault, presentClaimAndLockVault, purgeVaultTombstones, readFeedPage } from './feed.js';
import { insertChosenVersions } from './initial-version.js';
import {
  validateAbort,
  validateBeginRotation,
  validateCommit,
  validateEnable,
  validatePull,
  validatePurge,
  validatePush,
  validateRewrap,
  validateRotate,
  validateStage,
  validateUserId,
  type ValidChange,
} from './input.js';
import { judge, MAX_VERSION } from './judge.js';
import { VaultUsage } from './quota.js';
import { resolveSyncOptions } from './options.js';
import { compareStaged, deleteRotation, dropRotations, lockRotation, openRotation, stageRecords, stagedTotals, swapStaged } from './staged-rotation.js';
import { classifyFailure } from './transient.js';
import { VaultGate } from './vault-gate.js';
import { CLAIM_LIFETIME_SECONDS, ClaimRefusal, presentClaim, signClaim, type ClaimSession } from './claim.js';
import { ClaimKeySource, claimRefused } from './claim-key.js';
import {
  type BeginKeyRotationInput,
  type CommitKeyRotationInput,
  type Conflict,
  type EnableVaultInput,
  type PullInput,
  type PullResult,
  type PushInput,
  type PushResult,
  type RecordState,
  type RewrapKeyInput,
  type RotateKeyInput,
  type StageKeyRotationInput,
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
   * A push that writes nothing (empty, all conflicts, all already applied, or atomic with a
   * conflict) sends no write statement at all: both tables stay exactly as they were.
   *
   * @throws VaultNotFoundError | ValidationError | LimitExceededError | ResyncRequiredError | StaleKeyError | TransientError
   */
  async push(userId: string, input: PushInput): Promise<PushResult> {
    const owner = validateUserId(userId);
    const { changes, atomic, cursor, keyVersion } = validatePush(input, this.limits);
    return this.transaction(
      owner,
      async (em, session) => {
        const head = await presentClaimAndLockVault(em, session);
        if (!head) throw new VaultNotFoundError(owner);
        const since = resumePosition(cursor === null ? null : parseCursor(cursor), head, 'push');
        checkKeyVersion(changes, keyVersion, head.keyVersion);

        const current = changes.length === 0 ? [] : await em.find(VaultRecord, { vault: head.vaultId, recordId: { $in: changes.map((c) => c.recordId) } });
        const byId = new Map(current.map((r) => [r.recordId, r]));
        const applied: PushResult['applied'] = [];
        const confirmed: PushResult['applied'] = [];
        const conflicts: Conflict[] = [];
        const usage = new VaultUsage(head, this.limits);
        // Deferred until every change is judged: em.transactional flushes whatever is dirty on
        // commit, so a rejected push must not have touched a managed entity.
        const writes: (() => void)[] = [];
        // One managed reference for every new record: `ref(Vault, id)` per record would build an
        // unmanaged Vault each time, for the flush to swap for this very reference.
        let vaultRef: Ref<Vault> | undefined;
        changes.forEach((change, index) => {
          const record = byId.get(change.recordId);
          const verdict = judge(change, record, head.versionFloor);
          if (verdict.kind === 'conflict') {
            conflicts.push({ recordId: change.recordId, reason: verdict.reason, server: record ? toRecordState(record) : null });
            return;
          }
          if (verdict.kind === 'already_applied') {
            applied.push({ recordId: change.recordId, version: verdict.version });
            confirmed.push({ recordId: change.recordId, version: verdict.version });
            return;
          }
          // Positions go to written rows only, in order, right after the locked head.
          const position = head.lastSeq + writes.length + 1;
          applied.push({ recordId: change.recordId, version: verdict.version });
          usage.add(`changes.${index}`, change.recordId, record && !record.deleted ? record.ciphertext.length : null, change.ciphertext?.length ?? null);
          writes.push(() => {
            const ciphertext = change.ciphertext ?? EMPTY;
            if (record) {
              record.ciphertext = ciphertext;
              record.deleted = change.ciphertext === null;
              record.seq = position;
            } else {
              vaultRef ??= em.getReference(Vault, head.vaultId, { wrapped: true });
              em.persist(new VaultRecord(vaultRef, owner, change.recordId, ciphertext, position, verdict.version));
            }
          });
        });

        if (atomic && conflicts.length > 0) writes.length = 0;
        // Past this push's own rows only when the device had seen everything before them.
        const cursorOut = encodeCursor(head.vaultId, since === head.lastSeq ? head.lastSeq + writes.length : since, head.purgedSeq);
        if (writes.length === 0) {
          // Nothing to write: no flush. Changes an earlier attempt already applied stay reported.
          em.clear();
          return { applied: atomic && conflicts.length > 0 ? confirmed : applied, conflicts, cursor: cursorOut };
        }
        usage.check();
        for (const write of writes) write();
        em.getEventManager().registerSubscriber(insertChosenVersions);
        await flushOnce(em);
        return { applied, conflicts, cursor: cursorOut };
      },
      true,
    );
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
    return this.transaction(
      owner,
      async (em, session) => {
        // The cursor's vault is only known after the read; a foreign cursor wastes one page read.
        const position = cursor === null ? null : parseCursor(cursor);
        const page = await readFeedPage(em, session, position?.seq ?? 0, limit, maxBytes);
        if (!page) throw new VaultNotFoundError(owner);
        resumePosition(position, page, 'pull');
        const last = page.changes.at(-1)?.seq;
        const next = page.hasMore ? (last as number) : page.lastSeq;
        return {
          changes: page.changes.map(({ seq: _seq, ...state }) => state),
          cursor: encodeCursor(page.vaultId, next, page.purgedSeq),
          hasMore: page.hasMore,
        };
      },
      true,
    );
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
   * versions; otherwise nothing changes. One call carries at most `maxRotationRecords` records and
   * `maxRotationBytes` of ciphertext: rotate a larger vault with the staged calls
   * ({@link beginKeyRotation}). Bumps the vault's `keyVersion`.
   *
   * @throws VaultNotFoundError | VersionConflictError | ValidationError | LimitExceededError
   */
  async rotateKey(userId: string, input: RotateKeyInput): Promise<VaultInfo> {
    const owner = validateUserId(userId);
    const valid = validateRotate(input, this.limits);
    return this.transaction(owner, async (em) => {
      const head = await lockVault(em, owner);
      if (!head) throw new VaultNotFoundError(owner);
      const vault = await em.findOneOrFail(Vault, { id: head.vaultId });
      if (vault.version !== valid.expectedVersion) throw VersionConflictError.envelope(valid.expectedVersion, vault.version);

      const live = await em.find(VaultRecord, { vault: head.vaultId, deleted: false });
      const byId = new Map(live.map((r) => [r.recordId, r]));
      const submitted = new Set(valid.records.map((r) => r.recordId));
      const mismatch: RotationMismatch = {
        missing: live.filter((r) => !submitted.has(r.recordId)).map((r) => r.recordId),
        unknown: valid.records.filter((r) => !byId.has(r.recordId)).map((r) => r.recordId),
        stale: valid.records.filter((r) => byId.has(r.recordId) && byId.get(r.recordId)?.version !== r.baseVersion).map((r) => r.recordId),
      };
      if (mismatch.missing.length + mismatch.unknown.length + mismatch.stale.length > 0) {
        throw new VersionConflictError(rotationMismatch(mismatch), vault.version, mismatch);
      }
      checkNotExhausted(live.filter((r) => r.version >= MAX_VERSION).map((r) => r.recordId));

      const usage = new VaultUsage(head, this.limits);
      valid.records.forEach((submittedRecord, index) => {
        const record = byId.get(submittedRecord.recordId) as VaultRecord;
        usage.add(`records.${index}`, record.recordId, record.ciphertext.length, submittedRecord.ciphertext.length);
        record.ciphertext = submittedRecord.ciphertext;
        record.seq = head.lastSeq + index + 1;
      });
      usage.check();
      vault.replaceEnvelope(valid);
      vault.keyVersion = head.keyVersion + 1;
      // A staged rotation begun earlier can't commit after this one anyway (its versions are stale).
      await dropRotations(em, head.vaultId);
      await em.flush();
      return toVaultInfo(await em.refreshOrFail(vault));
    });
  }

  /**
   * Starts a staged key rotation, for vaults too large for one {@link rotateKey} call, as Firefox
   * Sync's batch uploads do: upload the re-encrypted records in chunks with
   * {@link stageKeyRotation}, then swap them all in, with the new envelope, in one transaction with
   * {@link commitKeyRotation}. Until the commit, the old key stays the vault's key and pushes keep
   * working. A vault has at most one staged rotation: beginning again replaces an earlier one.
   *
   * @throws VaultNotFoundError | VersionConflictError (a stale `expectedVersion`) | ValidationError
   */
  async beginKeyRotation(userId: string, input: BeginKeyRotationInput): Promise<{ rotationId: string }> {
    const owner = validateUserId(userId);
    const { expectedVersion } = validateBeginRotation(input);
    return this.transaction(owner, async (em) => {
      const head = await lockVault(em, owner);
      if (!head) throw new VaultNotFoundError(owner);
      const version = await envelopeVersion(em, head.vaultId);
      if (version !== expectedVersion) throw VersionConflictError.envelope(expectedVersion, version);
      return { rotationId: await openRotation(em, head.vaultId, owner) };
    });
  }

  /**
   * Uploads one chunk of a staged rotation: records re-encrypted under the next key, each at the
   * version it was read (within `maxRotationRecords` and `maxRotationBytes` per call). Staging a
   * record again replaces it; `remove` takes records out (ones deleted since they were staged).
   * The staged set may not grow past the vault quota. Takes no vault lock, so pushes go on.
   *
   * @returns how many records are staged now
   * @throws RotationNotFoundError | ValidationError | LimitExceededError
   */
  async stageKeyRotation(userId: string, input: StageKeyRotationInput): Promise<{ staged: number }> {
    const owner = validateUserId(userId);
    const valid = validateStage(input, this.limits);
    return this.transaction(owner, async (em) => {
      if (!(await lockRotation(em, valid.rotationId, owner))) throw new RotationNotFoundError(valid.rotationId);
      const totals = await stageRecords(em, valid.rotationId, owner, valid.records, valid.remove);
      const over = [];
      if (totals.records > this.limits.maxVaultRecords) over.push({ path: 'records', rule: `the rotation would stage ${totals.records} records; maxVaultRecords is ${this.limits.maxVaultRecords}` });
      if (totals.bytes > this.limits.maxVaultBytes) over.push({ path: 'records', rule: `the rotation would stage ${totals.bytes} bytes; maxVaultBytes is ${this.limits.maxVaultBytes}` });
      // Thrown inside the transaction: the chunk is rolled back, the earlier ones stay.
      if (over.length > 0) throw new LimitExceededError(over);
      return { staged: totals.records };
    });
  }

  /**
   * Commits a staged rotation: under the vault lock, checks that the staged records are exactly
   * the live records at their current versions, then rewrites every one of them (version + 1, a
   * new feed position each) and replaces the envelope, bumping `keyVersion`, all in one
   * transaction. When the staged set does not match, nothing changes and `VersionConflictError`
   * lists every missing, stale and unknown record in `mismatch`; the staged records stay, so the
   * client re-stages (or removes) only those and commits again.
   *
   * @throws VaultNotFoundError | RotationNotFoundError | VersionConflictError | ValidationError | LimitExceededError
   */
  async commitKeyRotation(userId: string, input: CommitKeyRotationInput): Promise<VaultInfo> {
    const owner = validateUserId(userId);
    const valid = validateCommit(input);
    return this.transaction(owner, async (em) => {
      const head = await lockVault(em, owner);
      if (!head) throw new VaultNotFoundError(owner);
      if (!(await lockRotation(em, valid.rotationId, owner, head.vaultId))) throw new RotationNotFoundError(valid.rotationId);
      const vault = await em.findOneOrFail(Vault, { id: head.vaultId });
      if (vault.version !== valid.expectedVersion) throw VersionConflictError.envelope(valid.expectedVersion, vault.version);

      const { exhausted, ...mismatch } = await compareStaged(em, valid.rotationId, head.vaultId);
      if (mismatch.missing.length + mismatch.unknown.length + mismatch.stale.length > 0) {
        throw new VersionConflictError(rotationMismatch(mismatch, true), vault.version, mismatch);
      }
      checkNotExhausted(exhausted);
      const staged = await stagedTotals(em, valid.rotationId);
      // The staged set is the live set, so the swap replaces head.storedBytes with staged.bytes;
      // like any write, it may not grow the vault past its quota.
      if (staged.bytes > this.limits.maxVaultBytes && staged.bytes > head.storedBytes) {
        throw new LimitExceededError([{ path: 'records', rule: `the vault would hold ${staged.bytes} bytes of live ciphertext; maxVaultBytes is ${this.limits.maxVaultBytes}` }]);
      }

      const rewritten = await swapStaged(em, valid.rotationId, head.vaultId, head.lastSeq);
      // Every writer of records takes the vault lock first, except a raw DELETE; if one got in
      // between, give up and let the caller retry on the new state.
      if (rewritten !== staged.records) {
        throw new TransientError('A record was deleted while the rotation was committed; nothing changed, retry the commit.', new Error(`rewrote ${rewritten} of ${staged.records} staged records`));
      }
      vault.replaceEnvelope(valid);
      vault.keyVersion = head.keyVersion + 1;
      await em.flush();
      return toVaultInfo(await em.refreshOrFail(vault));
    });
  }

  /**
   * Abandons a staged rotation and deletes its staged records. Safe to call twice.
   *
   * @returns whether there was such a rotation
   * @throws ValidationError
   */
  async abortKeyRotation(userId: string, input: { rotationId: string }): Promise<{ aborted: boolean }> {
    const owner = validateUserId(userId);
    const { rotationId } = validateAbort(input);
    return this.transaction(owner, async (em) => ({ aborted: await deleteRotation(em, rotationId, owner) }));
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
   * not yet seen a purged deletion get `ResyncRequiredError` on their next pull or push, so no
   * device silently misses a delete, and record ids never start over at a version a device still
   * remembers (the vault's `versionFloor` rises).
   *
   * Each vault is purged in a transaction of its own. Over all vaults, a vault that can't be
   * purged now (locked longer than `lockTimeoutMs`, a lost connection) is skipped with its reason
   * and the run goes on; any other failure stops the run with `PurgeIncompleteError`, which says
   * what was purged before. Purging every vault must see every vault, so it refuses to run where
   * row-level security applies (the application role): run it as the tables' owner (`DIRECT_URL`).
   *
   * @throws ValidationError | ConfigurationError | PurgeIncompleteError | TransientError (one user)
   */
  async purgeTombstones(input: { olderThan: Date; userId?: string }): Promise<PurgeReport> {
    const { olderThan, userId } = validatePurge(input);
    if (userId !== null) {
      const purged = await this.transaction(userId, (em) => purgeVaultTombstones(em, userId, olderThan));
      return { purged: purged ?? 0, vaults: purged === null ? 0 : 1, skipped: [] };
    }
    const report: PurgeReport = { purged: 0, vaults: 0, skipped: [] };
    for (const owner of await this.allVaultOwners()) {
      try {
        const purged = await this.transaction(owner, (em) => purgeVaultTombstones(em, owner, olderThan));
        if (purged !== null) {
          report.purged += purged;
          report.vaults++;
        }
      } catch (error) {
        if (!(error instanceof TransientError)) throw new PurgeIncompleteError({ ...report, skipped: [...report.skipped] }, owner, error);
        report.skipped.push({ userId: owner, reason: error.message });
      }
    }
    return report;
  }

  private async allVaultOwners(): Promise<string[]> {
    const em = this.em.fork();
    try {
      // Where row-level security applies, the listing would silently show no vault, or only some.
      const [rls] = await em.getConnection().execute<{ active: boolean }[]>("select row_security_active('public.vaults') as active");
      if (rls?.active) {
        throw new ConfigurationError(
          'purgeTombstones without a userId must see every vault, but row-level security applies to this connection\'s role. ' +
            'Run it as the tables\' owner, with an ORM connected to DIRECT_URL (the role that runs the migrations), or purge one user at a time with userId.',
        );
      }
      const rows = await em.getConnection().execute<{ user_id: string }[]>('select user_id from vaults order by user_id');
      return rows.map((r) => r.user_id);
    } catch (error) {
      throw classifyFailure(error);
    }
  }

  /**
   * Runs `work` in a transaction of its own on a fresh fork, with the caller's user id, a claim
   * signed for it, and the lock wait set for that transaction only (they vanish at commit, so
   * pooled connections never carry one user's setting into another's call). Row-level security
   * admits the user's rows only if the database accepts the claim, so a refused claim stops the
   * call here rather than letting it run on an empty view of the vault.
   *
   * With `claimInWork`, no statement of its own presents the claim: `work`'s first statement must
   * (push and pull, one round trip fewer; see `claimSubquery` in `claim.ts`) and throw
   * `ClaimRefusal` when refused, which is handled here exactly like a refusal of the own statement.
   */
  private async transaction<T>(userId: string, work: (em: EntityManager, session: ClaimSession) => Promise<T>, claimInWork = false): Promise<T> {
    // The gate comes first: a refused call never waits for, or holds, a pooled connection.
    return this.gate.run(userId, async () => {
      try {
        for (let attempt = 1; ; attempt++) {
          const claim = signClaim(await this.claimKey.get(), userId, Math.floor(Date.now() / 1000) + CLAIM_LIFETIME_SECONDS);
          const session: ClaimSession = { userId, claim, lockTimeoutMs: this.lockTimeoutMs };
          try {
            return await this.em.fork().transactional(async (em) => {
              if (!claimInWork) {
                const rejection = await presentClaim(em, session);
                if (rejection) throw new ClaimRefusal(rejection);
              }
              return work(em, session);
            });
          } catch (error) {
            if (!(error instanceof ClaimRefusal)) throw error;
            // A key read from the database may have been rotated since: nothing was done yet, so
            // read it again and retry once. A configured key is wrong until someone fixes it.
            if (attempt === 1 && this.claimKey.refused()) continue;
            throw claimRefused(error.rejection, this.claimKey.origin);
          }
        }
      } catch (error) {
        throw classifyFailure(error);
      }
    });
  }
}

function rotationMismatch(mismatch: RotationMismatch, staged = false): string {
  const list = (ids: readonly string[]) => ids.slice(0, 5).map((id) => `"${id}"`).join(', ') + (ids.length > 5 ? ` and ${ids.length - 5} more` : '');
  const parts = [
    mismatch.missing.length ? `live records not re-encrypted: ${list(mismatch.missing)}` : '',
    mismatch.unknown.length ? `records that are not live: ${list(mismatch.unknown)}` : '',
    mismatch.stale.length ? `records whose baseVersion is not current: ${list(mismatch.stale)}` : '',
  ].filter(Boolean);
  const next = staged
    ? 'Nothing was changed and the staged records stay; pull, stage (or remove) the records listed in `mismatch`, and commit again.'
    : 'Nothing was changed; pull and retry.';
  return `Key rotation must re-encrypt exactly the live records at their current versions; ${parts.join('; ')}. ${next}`;
}

/**
 * Refuses a rotation over records whose version can't go up any more (issue #12.6; practically
 * unreachable: 2,147,483,647 writes to one record).
 */
function checkNotExhausted(recordIds: string[]): void {
  if (recordIds.length === 0) return;
  throw new LimitExceededError(
    recordIds.map((recordId) => ({
      recordId,
      path: 'records',
      rule: `the record is at version ${MAX_VERSION}, the last one, and can't be re-encrypted; an operator must delete it (devices then resync) before the vault can rotate`,
    })),
  );
}

/**
 * Refuses a push whose ciphertext is not under the vault's current key. Before the first
 * rotation, naming the key version is optional (older clients never did); after it, required.
 * @throws StaleKeyError
 */
function checkKeyVersion(changes: ValidChange[], keyVersion: number | null, current: number): void {
  if (!changes.some((c) => c.ciphertext !== null)) return;
  if (keyVersion === null ? current > 1 : keyVersion !== current) throw new StaleKeyError(keyVersion, current);
}

/**
 * The push's one flush of the unit of work, and the last: afterwards the fork is cleared, so
 * `em.transactional` neither flushes it again on commit (diffing every loaded record a second time
 * for nothing) nor merges its entities into the parent fork, which is dropped anyway.
 *
 * Under the vault row lock no other writer of the service can move a record's version between the
 * read and this flush, so MikroORM's optimistic-lock SELECT before the batched UPDATE is one round
 * trip for nothing: the records driver folds the same version check into the UPDATE itself (a
 * writer outside the service still fails the flush with `OptimisticLockError`, see
 * `src/records-driver.ts`).
 */
async function flushOnce(em: EntityManager): Promise<void> {
  const driver = em.getDriver();
  const ctx = em.getTransactionContext();
  // An ORM built with another driver (an application's override) keeps MikroORM's own check.
  if (driver instanceof VaultDbDriver) driver.deferLockChecks(ctx);
  try {
    await em.flush();
  } finally {
    if (driver instanceof VaultDbDriver) driver.endDeferredLockChecks(ctx);
  }
  em.clear();
}

/** The envelope version of the (locked) vault. */
async function envelopeVersion(em: EntityManager, vaultId: string): Promise<number> {
  const rows = await em.execute<{ version: number }[]>('select version from vaults where id = ?', [vaultId]);
  return (rows[0] as { version: number }).version;
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
    keyVersion: vault.keyVersion,
    enabledAt: vault.enabledAt,
    updatedAt: vault.updatedAt,
  };
}
