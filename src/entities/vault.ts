import { randomUUID } from 'node:crypto';
import {
  BeforeCreate,
  BeforeUpdate,
  BigIntType,
  Collection,
  Entity,
  OneToMany,
  OptionalProps,
  PrimaryKey,
  Property,
  Unique,
} from '@mikro-orm/core';
import { validateEnvelope, type KdfParams, type KeyEnvelope } from '../envelope.js';
import { VaultRecord } from './vault-record.js';

/**
 * One vault per user: the key envelope (the vault key wrapped by a password-derived key, its salt
 * and KDF parameters) and the head of the vault's change feed. The server never sees a password or
 * a plaintext key.
 *
 * The envelope is validated whenever a vault is created or its envelope changes, so an invalid or
 * weak envelope can't be flushed. `version` is the envelope's optimistic lock. The counters
 * (`lastSeq`, `purgedSeq`, `versionFloor`, `recordCount`, `storedBytes`) are maintained by the
 * database's triggers on `records` (see Migration20261130100200), for every writer, so pushes never
 * bump `version` and no code writes them through this entity.
 */
@Entity({ tableName: 'vaults' })
class VaultDbVault {
  [OptionalProps]?:
    | 'version'
    | 'enabledAt'
    | 'createdAt'
    | 'updatedAt'
    | 'lastSeq'
    | 'purgedSeq'
    | 'versionFloor'
    | 'keyVersion'
    | 'recordCount'
    | 'storedBytes'
    | 'deviceFingerprint';

  @PrimaryKey({ type: 'uuid', defaultRaw: 'gen_random_uuid()' })
  id: string = randomUUID();

  /** The authenticated user's id (a Clerk user id). One vault per user. */
  @Property({ type: 'text' })
  @Unique({ name: 'idx_vaults_user_id' })
  userId: string;

  @Property({ type: 'blob' })
  wrappedKey: Buffer;

  @Property({ type: 'blob' })
  salt: Buffer;

  @Property({ type: 'json' })
  kdfParams: KdfParams;

  @Property({ type: 'text', nullable: true })
  deviceFingerprint: string | null = null;

  /** Optimistic lock of the envelope: bumped by every ORM update of this row. */
  @Property({ type: 'integer', version: true, default: 1 })
  version!: number;

  /** Highest feed position handed out in this vault (see `src/sync/feed.ts`). */
  @Property({ type: new BigIntType('number'), default: 0 })
  lastSeq!: number;

  /**
   * Cursors below this position must resync: the highest position of a deleted tombstone, or the
   * head at the moment a live record was deleted (a change no device could otherwise learn of).
   */
  @Property({ type: new BigIntType('number'), default: 0 })
  purgedSeq!: number;

  /**
   * Highest version of any record row ever deleted from this vault (purged tombstones, raw
   * deletes). New records start above it, so a version of a record id is never used twice.
   */
  @Property({ type: 'integer', default: 0 })
  versionFloor!: number;

  /** Generation of the vault key: 1 when enabled, + 1 on every rotation (a rewrap keeps it). */
  @Property({ type: 'integer', default: 1 })
  keyVersion!: number;

  /** Live records (tombstones not counted), for the per-vault quota. */
  @Property({ type: 'integer', default: 0 })
  recordCount!: number;

  /** Bytes of ciphertext of the live records, for the per-vault quota. */
  @Property({ type: new BigIntType('number'), default: 0 })
  storedBytes!: number;

  @Property({ type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()' })
  enabledAt!: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()' })
  createdAt!: Date;

  /** Set by a database trigger on every update, including writes that bypass the ORM. */
  @Property({ type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()' })
  updatedAt!: Date;

  @OneToMany(() => VaultRecord, (record) => record.vault, { orphanRemoval: true })
  records = new Collection<VaultRecord>(this);

  /**
   * @param userId the owner
   * @param envelope the wrapped key, salt and KDF parameters; validated here
   * @param deviceFingerprint the device that enabled the vault, if the client reports one
   * @throws ValidationError when the envelope breaks a rule
   */
  constructor(userId: string, envelope: KeyEnvelope, deviceFingerprint?: string | null) {
    const valid = validateEnvelope(envelope);
    this.userId = userId;
    this.wrappedKey = Buffer.from(valid.wrappedKey);
    this.salt = Buffer.from(valid.salt);
    this.kdfParams = valid.kdfParams;
    this.deviceFingerprint = deviceFingerprint ?? null;
  }

  /**
   * Replaces the envelope after validating it. The caller's flush bumps `version`.
   * @throws ValidationError when the envelope breaks a rule
   */
  replaceEnvelope(envelope: KeyEnvelope): void {
    const valid = validateEnvelope(envelope);
    this.wrappedKey = Buffer.from(valid.wrappedKey);
    this.salt = Buffer.from(valid.salt);
    this.kdfParams = valid.kdfParams;
  }

  /** Re-validates before every insert and update, so code that sets fields directly can't store a bad envelope. */
  @BeforeCreate()
  @BeforeUpdate()
  protected checkEnvelope(): void {
    validateEnvelope({ wrappedKey: this.wrappedKey, salt: this.salt, kdfParams: this.kdfParams });
  }
}

// Exported as `Vault`. MikroORM names an entity after its class, so the class is VaultDbVault:
// an app's own `Vault` entity can then share an ORM with this one.
export { VaultDbVault as Vault };
