import { Vault } from './vault.js';
import { VaultRecord } from './vault-record.js';
import { KeyRotation } from './key-rotation.js';
import { StagedRecord } from './staged-record.js';

export { Vault, VaultRecord, KeyRotation, StagedRecord };

/** Every entity of the package, for the MikroORM `entities` option. */
export const entities = [Vault, VaultRecord, KeyRotation, StagedRecord] as const;
