import { randomUUID } from 'node:crypto';
import { Entity, Index, ManyToOne, PrimaryKey, Property, Unique, type Ref } from '@mikro-orm/core';
import type { KeyRotation } from './key-rotation.js';

/**
 * One record re-encrypted under the next vault key, uploaded by `stageKeyRotation` and waiting for
 * `commitKeyRotation`. `baseVersion` is the version of the live record it replaces; the commit
 * refuses a staged set that is not exactly the live records at their current versions. Staging the
 * same `recordId` again replaces the row.
 */
@Entity({ tableName: 'staged_records' })
@Unique({ name: 'staged_records_rotation_id_record_id_unique', properties: ['rotation', 'recordId'] })
class VaultDbStagedRecord {
  @PrimaryKey({ type: 'uuid', defaultRaw: 'gen_random_uuid()' })
  id: string = randomUUID();

  /** The vault's owner, for row-level security. */
  @Property({ type: 'text' })
  @Index({ name: 'idx_staged_records_user_id' })
  userId: string;

  @ManyToOne({
    entity: 'VaultDbKeyRotation',
    ref: true,
    deleteRule: 'cascade',
    updateRule: 'no action',
    foreignKeyName: 'staged_records_rotation_id_fkey',
  })
  rotation: Ref<KeyRotation>;

  /** The client's id of the record. */
  @Property({ type: 'text' })
  recordId: string;

  /** The live record's version this ciphertext replaces. */
  @Property({ type: 'integer' })
  baseVersion: number;

  /** The record encrypted under the next vault key. */
  @Property({ type: 'blob' })
  ciphertext: Buffer;

  /**
   * @param rotation the rotation it belongs to
   * @param userId the vault's owner
   * @param recordId the client's id
   * @param baseVersion the live record's version it replaces
   * @param ciphertext the re-encrypted record
   */
  constructor(rotation: Ref<KeyRotation>, userId: string, recordId: string, baseVersion: number, ciphertext: Buffer) {
    this.rotation = rotation;
    this.userId = userId;
    this.recordId = recordId;
    this.baseVersion = baseVersion;
    this.ciphertext = ciphertext;
  }
}

// Exported as `StagedRecord`. MikroORM names an entity after its class, so the class is VaultDbStagedRecord:
// an app's own `StagedRecord` entity can then share an ORM with this one.
export { VaultDbStagedRecord as StagedRecord };
