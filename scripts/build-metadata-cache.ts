/**
 * Part of `npm run build`: reflects the entities once with ts-morph and writes the combined
 * metadata cache to `dist/metadata.json`, which the built package reads instead of reflecting at
 * run time (see `metadataOptions` in src/config.ts). No database connection is needed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FileCacheAdapter } from '@mikro-orm/core';
import { MikroORM } from '@mikro-orm/postgresql';
import { TsMorphMetadataProvider } from '@mikro-orm/reflection';
import { createConfig } from '../src/config.js';

const target = path.resolve(process.argv[2] ?? 'dist/metadata.json');
const cacheDir = mkdtempSync(path.join(tmpdir(), 'vault-db-metadata-'));
try {
  const orm = await MikroORM.init({
    ...createConfig('postgres://unused@127.0.0.1:1/unused'),
    connect: false,
    metadataProvider: TsMorphMetadataProvider,
    metadataCache: { enabled: true, adapter: FileCacheAdapter, options: { cacheDir, combined: target } },
  });
  await orm.close(true);
  console.log(`metadata cache written to ${path.relative(process.cwd(), target)}`);
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
