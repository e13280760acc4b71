/**
 * The package reads entity metadata from the decorators alone (ReflectMetadataProvider), so no
 * ts-morph and no cache file at run time. That holds only while every property declares its type
 * and nullability: this compares the schema it yields with what ts-morph reads from the sources.
 */
import { ReflectMetadataProvider } from '@mikro-orm/core';
import { MikroORM } from '@mikro-orm/postgresql';
import { TsMorphMetadataProvider } from '@mikro-orm/reflection';
import { expect, test } from 'vitest';
import { createConfig } from '../../src/config.js';

async function schemaWith(provider: typeof ReflectMetadataProvider | typeof TsMorphMetadataProvider): Promise<{ sql: string; nullable: Record<string, boolean> }> {
  const orm = await MikroORM.init({
    ...createConfig('postgres://unused@127.0.0.1:1/unused'),
    connect: false,
    metadataProvider: provider,
    metadataCache: { enabled: false },
  });
  try {
    const nullable: Record<string, boolean> = {};
    for (const meta of Object.values(orm.getMetadata().getAll())) {
      for (const prop of Object.values(meta.properties)) nullable[`${meta.className}.${prop.name}`] = prop.nullable === true;
    }
    return { sql: await orm.schema.getCreateSchemaSQL({ wrap: false }), nullable };
  } finally {
    await orm.close(true);
  }
}

test('the decorators alone give the schema ts-morph reads from the sources', async () => {
  const [fromDecorators, fromSources] = await Promise.all([schemaWith(ReflectMetadataProvider), schemaWith(TsMorphMetadataProvider)]);
  expect(fromDecorators.sql).toContain('create table "vaults"');
  expect(fromDecorators.sql).toBe(fromSources.sql);
  expect(fromDecorators.nullable).toEqual(fromSources.nullable);
}, 120_000);
