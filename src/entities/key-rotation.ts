import { randomUUID } from 'node:crypto';
import { Entity, Index, ManyToOne, OptionalProps, PrimaryKey, Property, Unique, type Ref } from '@mikro-orm/core';
import type { Vault } from './vault.js';

/**
 * A staged key rotation in progress: `beginKeyRotation` creates it, `stageKeyRotation` uploads
 * re-encrypted records into it ({@link StagedRecord}) in as many calls as the per-call limits
 * need, and `commitKeyRotation` swaps them in with the new envelope in one transaction. One per
 * vault: a new begin replaces an earlier rotation. Deleting the vault deletes it (ON DELETE
 * CASCADE), and its staged records with it.
 */
@Entity({ tableName: 'key_rotations' })
@Unique({ name: 'key_rotations_vault_id_unique', properties: ['vault'] })
class VaultDbKeyRotation {
  [OptionalProps]?: 'createdAt';

  @PrimaryKey({ type: 'uuid', defaultRaw: 'gen_random_uuid()' })
  id: string = randomUUID();

  /** The vault's owner, for row-level security. */
  @Property({ type: 'text' })
  @Index({ name: 'idx_key_rotations_user_id' })
  userId: string;

  @ManyToOne({
    entity: 'VaultDbVault',
    ref: true,
    deleteRule: 'cascade',
    updateRule: 'no action',
    foreignKeyName: 'key_rotations_vault_id_fkey',
  })
  vault: Ref<Vault>;

  @Property({ type: 'datetime', columnType: 'timestamptz', defaultRaw: 'now()' })
  createdAt!: Date;

  /**
   * @param vault the vault being rotated
   * @param userId the vault's owner
   */
  constructor(vault: Ref<Vault>, userId: string) {
    this.vault = vault;
    this.userId = userId;
  }
}

// Exported as `KeyRotation`. MikroORM names an entity after its class, so the class is VaultDbKeyRotation:
// an app's own `KeyRotation` entity can then share an ORM with this one.
export { VaultDbKeyRotation as KeyRotation };
