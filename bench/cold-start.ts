/**
 * Cold start: `MikroORM.init` in fresh processes, with runtime reflection (ts-morph reads the
 * entity sources, metadata cache off), with the package's config as it stands, and with a
 * prebuilt metadata cache (`GeneratedCacheAdapter`, the output of
 * `mikro-orm cache:generate --combined`) and no `@mikro-orm/reflection` at all.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FileCacheAdapter, MikroORM } from '@mikro-orm/postgresql';
import { TsMorphMetadataProvider } from '@mikro-orm/reflection';
import { createConfig } from '../src/config.js';
import type { ColdStartSample } from './cold-start-child.js';
import { stats, type Stats } from './measure.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The three ways to start. */
export type ColdStartVariant = ColdStartSample['variant'];

/** One variant's figures. */
export interface ColdStartResult {
  variant: ColdStartVariant;
  title: string;
  /** `MikroORM.init` (discovery and connect), ms. */
  init: Stats;
  /** Importing MikroORM, entities and provider, ms. */
  imports: Stats;
  /** Process start to a connected ORM, ms. */
  total: Stats;
  tsMorphLoaded: boolean;
  maxRssMb: number;
  configFrom?: string;
}

const TITLES: Record<ColdStartVariant, string> = {
  reflection: 'runtime reflection (TsMorphMetadataProvider, metadata cache disabled)',
  'package-default': "the package's createConfig",
  prebuilt: 'prebuilt metadata cache (GeneratedCacheAdapter, no @mikro-orm/reflection)',
};

/**
 * Writes the combined metadata cache the way `mikro-orm cache:generate --combined` does (a
 * discovery through `FileCacheAdapter` with `combined` set) and returns its path.
 */
async function generateCache(dir: string, url: string): Promise<string> {
  const orm = await MikroORM.init(
    createConfig(url, {
      connect: false,
      metadataProvider: TsMorphMetadataProvider,
      metadataCache: { enabled: true, adapter: FileCacheAdapter, options: { cacheDir: dir, combined: 'metadata.json' } },
    }),
  );
  await orm.close(true);
  return path.join(dir, 'metadata.json');
}

async function child(variant: ColdStartVariant, url: string, cache: string): Promise<ColdStartSample> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/cold-start-child.ts', variant], {
    cwd: ROOT,
    env: { ...process.env, BENCH_DATABASE_URL: url, BENCH_METADATA_CACHE: cache },
    timeout: 120_000,
  });
  const line = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as ColdStartSample;
}

/** Runs every variant `reps` times (interleaved) and summarizes. */
export async function coldStart(url: string, reps: number, log: (line: string) => void): Promise<ColdStartResult[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'vault-db-bench-cache-'));
  try {
    const cache = await generateCache(dir, url);
    const variants: ColdStartVariant[] = ['reflection', 'package-default', 'prebuilt'];
    const samples = new Map<ColdStartVariant, ColdStartSample[]>(variants.map((v) => [v, []]));
    // One untimed start first, so the first timed one doesn't pay for reading MikroORM from disk.
    await child('prebuilt', url, cache);
    for (let rep = 0; rep < reps; rep++) {
      for (const variant of rep % 2 === 0 ? variants : [...variants].reverse()) {
        samples.get(variant)?.push(await child(variant, url, cache));
      }
    }
    return variants.map((variant) => {
      const list = samples.get(variant) ?? [];
      const result: ColdStartResult = {
        variant,
        title: TITLES[variant],
        init: stats(list.map((s) => s.initMs)),
        imports: stats(list.map((s) => s.importMs)),
        total: stats(list.map((s) => s.totalMs)),
        tsMorphLoaded: list.some((s) => s.tsMorphLoaded),
        maxRssMb: Math.max(...list.map((s) => s.maxRssMb)),
        ...(list[0]?.configFrom ? { configFrom: list[0].configFrom } : {}),
      };
      log(`  cold start, ${variant}: init ${result.init.median.toFixed(0)} ms, imports ${result.imports.median.toFixed(0)} ms`);
      return result;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
