import { randomUUID } from 'node:crypto';
import {
  BigIntType,
  Check,
  Entity,
  Index,
  ManyToOne,
  OptionalProps,
  PrimaryKey,
  Property,
  Unique,
  type Ref,
} from '@mikro-orm/core';
import { CiphertextType } from './ciphertext-type.js';
import type { Vault } from './vault.js';

/**
 * One bookmark of one vault, stored as opaque ciphertext. `recordId` is the client's id.
 *
 * `version` is the record's optimistic lock and the client's `baseVersion` is compared to it.
 * `seq` is the record's position in its vault's change feed: every write gives the row a new,
 * higher `seq`, handed out under the vault row lock, so a reader's cursor never skips a change.
 * A delete keeps the row as a tombstone (`deleted = true`) with its ciphertext erased.
 *
 * Its scalars are left out of MikroORM's auto-flush change tracking (`trackChanges: false`): that
 * tracking defines an accessor on every scalar of every instance, and a push builds up to
 * thousands of records (issue 10's fourth lever, without making `flushMode: 'commit'` global for
 * an app that shares the ORM). An explicit flush still writes every change (it compares
 * snapshots); only a query on records no longer flushes a changed record first, so flush before
 * querying records you changed. `Vault` keeps the tracking.
 */
@Entity({ tableName: 'records' })
@Unique({ name: 'records_vault_id_record_id_unique', properties: ['vault', 'recordId'] })
@Unique({ name: 'idx_records_vault_seq', properties: ['vault', 'seq'] })
@Index({ name: 'idx_records_vault_id', properties: ['vault'] })
// A tombstone keeps no content, and a live record always has some.
@Check({ name: 'records_tombstone_is_empty', expression: '(deleted and octet_length(ciphertext) = 0) or (not deleted and octet_length(ciphertext) > 0)' })
class VaultDbVaultRecord {
  [OptionalProps]?: 'version' | 'deleted' | 'createdAt' | 'updatedAt';

  @PrimaryKey({ type: 'uuid', defaultRaw: 'gen_random_uuid()' })
  id: string = randomUUID();

  /** Always equal to the vault's `userId`; a database trigger rejects anything else. */
  @Property({ type: 'text', trackChanges: false })
  @Index({ name: 'idx_records_user_id' })
  userId: string;

  @ManyToOne({
    entity: 'VaultDbVault',
    ref: true,
    deleteRule: 'cascade',
    updateRule: 'no action',
    foreignKeyName: 'records_vault_id_fkey',
  })
  vault: Ref<Vault>;

  /** The client's id of the bookmark, unique within a vault. */
  @Property({ type: 'text', trackChanges: false })
  @Index({ name: 'idx_records_record_id' })
  recordId: string;

  /** Opaque encrypted bookmark. Empty for a tombstone. Replace it, never write into it (see CiphertextType). */
  @Property({ type: CiphertextType, trackChanges: false })
  ciphertext: Buffer;

  /**
   * The optimistic lock. A new record starts above its vault's `versionFloor` (never at a version
   * a deleted record of the vault had); MikroORM leaves a `version: true` property out of its
   * INSERT, so the sync service puts the chosen value back for the flush (see
   * `src/sync/initial-version.ts`), and the database refuses any insert at or below the floor.
   */
  @Property({ type: 'integer', version: true, default: 1, trackChanges: false })
  version!: number;

  @Property({ type: 'boolean', default: false, trackChanges: false })
  deleted: boolean = false;

  /** Position in the vault's change feed; see the class comment. */
  @Property({ type: new BigIntType('number'), trackChanges: false })
  seq: number;

  @Property({ type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()', trackChanges: false })
  createdAt!: Date;

  /** Set by a database trigger on every update, including writes that bypass the ORM. */
  @Property({ type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()', trackChanges: false })
  @Index({ name: 'idx_records_updated_at' })
  updatedAt!: Date;

  /**
   * @param vault the owning vault (a reference is enough)
   * @param userId the vault's owner; must equal the vault's `userId`
   * @param recordId the client's id
   * @param ciphertext the encrypted bookmark
   * @param seq the feed position handed out for this write
   * @param version the first version, above the vault's `versionFloor`; the column default (1) when omitted
   */
  constructor(vault: Ref<Vault>, userId: string, recordId: string, ciphertext: Buffer, seq: number, version?: number) {
    this.vault = vault;
    this.userId = userId;
    this.recordId = recordId;
    this.ciphertext = ciphertext;
    this.seq = seq;
    if (version !== undefined) this.version = version;
  }
}

// Exported as `VaultRecord`. MikroORM names an entity after its class, so the class is VaultDbVaultRecord:
// an app's own `VaultRecord` entity can then share an ORM with this one.
export { VaultDbVaultRecord as VaultRecord };
