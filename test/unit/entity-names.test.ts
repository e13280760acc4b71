/**
 * MikroORM names an entity after its class. An app that shares its ORM with vault-db
 * (`withVaultDb`) may well have entities called `Vault` or `VaultRecord` of its own: vault-db's
 * classes are named `VaultDb<export>` so both sets are discovered side by side, each on its own
 * table. No database: discovery only.
 */
import { EntitySchema, MikroORM } from '@mikro-orm/postgresql';
import { expect, test } from 'vitest';
import { withVaultDb } from '../../src/config.js';
import { KeyRotation, StagedRecord, Vault, VaultRecord } from '../../src/entities/index.js';

test("vault-db's entities are named VaultDb<export>, apart from the names an app would pick", () => {
  expect([Vault, VaultRecord, KeyRotation, StagedRecord].map((e) => e.name)).toEqual([
    'VaultDbVault',
    'VaultDbVaultRecord',
    'VaultDbKeyRotation',
    'VaultDbStagedRecord',
  ]);
});

test("an app's own Vault, VaultRecord, KeyRotation and StagedRecord entities are discovered beside vault-db's", async () => {
  const own = (name: string) =>
    new EntitySchema<{ id: number }>({ name, tableName: `app_${name.toLowerCase()}`, properties: { id: { type: 'integer', primary: true } } });
  const appEntities = ['Vault', 'VaultRecord', 'KeyRotation', 'StagedRecord'].map(own);
  const orm = await MikroORM.init({
    ...withVaultDb({ clientUrl: 'postgres://unused@127.0.0.1:1/unused', entities: appEntities }),
    connect: false,
  });
  try {
    const metadata = orm.getMetadata();
    expect(metadata.find('Vault')?.tableName).toBe('app_vault');
    expect(metadata.find('VaultRecord')?.tableName).toBe('app_vaultrecord');
    expect(metadata.get(Vault.name).tableName).toBe('vaults');
    expect(metadata.get(VaultRecord.name).tableName).toBe('records');
    // The package's relations still point at its own entities, not at the app's namesakes.
    expect(metadata.get(VaultRecord.name).properties.vault!.type).toBe('VaultDbVault');
    expect(metadata.get(StagedRecord.name).properties.rotation!.type).toBe('VaultDbKeyRotation');
  } finally {
    await orm.close(true);
  }
});
