/**
 * New records start above their vault's version floor, so the sync service chooses each new
 * record's first version. MikroORM 6 never writes a `version: true` property in an INSERT: its
 * change-set payload leaves version properties out (`EntityComparator.isComparable`), the column
 * default (1) applies, and the returned value overwrites the one the entity held. (Checked on
 * 6.6.16: a record persisted with `version = 7` is stored and read back at 1.)
 *
 * This flush listener puts the chosen version back into the INSERT's payload of every new
 * `VaultRecord` that has one. The push registers it on its transaction's own EntityManager
 * (`em.transactional` gives the fork a copy of the event manager), so it touches no other flush.
 * The database refuses any insert at or below the vault's floor anyway
 * (`records_version_above_floor`), so a version lost here would fail loudly, never silently.
 *
 * @module
 */
import { ChangeSetType, type EventSubscriber, type FlushEventArgs } from '@mikro-orm/core';
import { VaultRecord } from '../entities/vault-record.js';

/** See the module comment. */
export const insertChosenVersions: EventSubscriber = {
  onFlush({ uow }: FlushEventArgs): void {
    for (const changeSet of uow.getChangeSets()) {
      if (changeSet.type !== ChangeSetType.CREATE || !(changeSet.entity instanceof VaultRecord)) continue;
      const version = (changeSet.entity as VaultRecord).version as number | undefined;
      if (version !== undefined) (changeSet.payload as { version?: number }).version = version;
    }
  },
};
