/**
 * The consumer app of scripts/consumer-test.sh: the README's snippet as an app writes it against
 * the installed package (type-checked with `tsc --strict`, no skipLibCheck), run as compiled, and
 * bundled with esbuild. It prints `consumer: ok` at the end; any failure exits non-zero.
 */
import { MikroORM } from '@mikro-orm/postgresql';
import {
  createConfig,
  isVaultDbError,
  SyncService,
  type KdfParams,
  type VaultDbErrorCode,
} from 'vault-db';
import { randomBytes } from 'node:crypto';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is not set');

// The migrations ran before (npx vault-db migrate); the app only opens its ORM.
const orm = await MikroORM.init(createConfig(url));
try {
  const sync = new SyncService(orm.em, { lockTimeoutMs: 5000 });
  const userId = `user_consumer_${randomBytes(4).toString('hex')}`;
  // A valid envelope: PBKDF2 with 600,000+ iterations, and a salt exactly saltLength bytes long.
  const kdfParams: KdfParams = { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 };
  await sync.enableVault(userId, { wrappedKey: randomBytes(60), salt: randomBytes(16), kdfParams });

  const pushed = await sync.push(userId, { changes: [{ recordId: 'bookmark-1', baseVersion: 0, ciphertext: randomBytes(48) }], cursor: null });
  if (pushed.applied.length !== 1) throw new Error(`push applied ${pushed.applied.length} change(s), expected 1`);
  const page = await sync.pull(userId, { cursor: null, limit: 500 });
  if (page.changes.length !== 1) throw new Error(`pull returned ${page.changes.length} change(s), expected 1`);

  // The guard narrows to the class of the code: `conflicts` exists only on VersionConflictError.
  try {
    await sync.enableVault(userId, { wrappedKey: randomBytes(60), salt: randomBytes(16), kdfParams });
    throw new Error('enabling a vault twice did not fail');
  } catch (error) {
    if (!isVaultDbError(error, 'vault_already_enabled')) throw error;
    const code: 'vault_already_enabled' = error.code;
    const anyCode: VaultDbErrorCode = code;
    void anyCode;
  }
  await sync.disableVault(userId);
  console.log('consumer: ok');
} finally {
  await orm.close(true);
}
