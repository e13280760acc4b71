import { Vault } from './vault.js';
import { VaultRecord } from './vault-record.js';

export { Vault, VaultRecord };

/** Every entity of the package, for the MikroORM `entities` option. */
export const entities = [Vault, VaultRecord] as const;
