/**
 * One cold start, in a fresh process: imports MikroORM and the entities, runs `MikroORM.init`
 * (discovery and the first connection), and prints one JSON line with the timings. Started by
 * `bench/cold-start.ts`, once per repetition and variant, so nothing is warm but the OS file cache.
 *
 * Usage: `node --import tsx bench/cold-start-child.ts <variant>` with `BENCH_DATABASE_URL` set,
 * and `BENCH_METADATA_CACHE` (a combined metadata JSON) for the `prebuilt` variant.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Options } from '@mikro-orm/postgresql';

/** The variants: see {@link ColdStartVariant} in `bench/cold-start.ts`. */
type Variant = 'reflection' | 'package-default' | 'prebuilt';

/** What the child reports. */
export interface ColdStartSample {
  variant: Variant;
  /** Time from process start to this module running (Node and the tsx loader), ms. */
  bootMs: number;
  /** Importing MikroORM, the entities and the metadata provider, ms. */
  importMs: number;
  /** `MikroORM.init`: discovery and connecting, ms. */
  initMs: number;
  /** Process start to a connected ORM, ms. */
  totalMs: number;
  /** Whether ts-morph (and so the TypeScript compiler) was loaded. */
  tsMorphLoaded: boolean;
  /** Peak RSS of the process, MiB. */
  maxRssMb: number;
  /** Which module the package's config came from (for `package-default`). */
  configFrom?: string;
}

const variant = process.argv[2] as Variant;
const url = process.env.BENCH_DATABASE_URL as string;
const bootMs = performance.now();

async function optionsFor(): Promise<{ options: Options; configFrom?: string }> {
  if (variant === 'package-default') {
    // The package as an application would load it: the build when there is one, else the sources.
    const dist = new URL('../dist/index.js', import.meta.url);
    const fromDist = await readFile(dist).then(
      () => true,
      () => false,
    );
    const target = fromDist ? dist.href : new URL('../src/config.ts', import.meta.url).href;
    const { createConfig } = (await import(target)) as { createConfig: (url: string) => Options };
    return { options: createConfig(url), configFrom: fromDist ? 'dist/index.js' : 'src/config.ts' };
  }
  const { defineConfig, GeneratedCacheAdapter, MetadataProvider } = await import('@mikro-orm/postgresql');
  const { Migrator } = await import('@mikro-orm/migrations');
  const { entities } = await import('../src/entities/index.js');
  // The options of src/config.ts that matter at init; the two variants differ only in metadata.
  const common = { clientUrl: url, entities: [...entities], extensions: [Migrator], batchSize: 1000, allowGlobalContext: false, forceUtcTimezone: true, pool: { min: 0, max: 10 } };
  if (variant === 'reflection') {
    const { TsMorphMetadataProvider } = await import('@mikro-orm/reflection');
    return { options: defineConfig({ ...common, metadataProvider: TsMorphMetadataProvider, metadataCache: { enabled: false } }) };
  }
  const data = JSON.parse(await readFile(process.env.BENCH_METADATA_CACHE as string, 'utf8')) as Record<string, unknown>;
  // With a complete cache no provider ever runs; this one proves it by failing if one does.
  class PrebuiltOnlyProvider extends MetadataProvider {
    loadEntityMetadata(): void {
      throw new Error('an entity is missing from the prebuilt metadata cache');
    }
  }
  return { options: defineConfig({ ...common, metadataProvider: PrebuiltOnlyProvider, metadataCache: { enabled: true, adapter: GeneratedCacheAdapter, options: { data } } }) };
}

const importStart = performance.now();
const { MikroORM } = await import('@mikro-orm/postgresql');
const { options, configFrom } = await optionsFor();
const initStart = performance.now();
const orm = await MikroORM.init(options);
const done = performance.now();
const tsMorphLoaded = Object.keys(createRequire(import.meta.url).cache).some((id) => id.includes('/node_modules/ts-morph/'));
await orm.close(true);
const sample: ColdStartSample = {
  variant,
  bootMs,
  importMs: initStart - importStart,
  initMs: done - initStart,
  totalMs: done,
  tsMorphLoaded,
  maxRssMb: process.resourceUsage().maxRSS / 1024,
  ...(configFrom ? { configFrom } : {}),
};
console.log(JSON.stringify(sample));
