/**
 * Each unit-of-work lever of issue 10, measured on its own: the service's pushes with every lever
 * (this checkout) against the same pushes with one lever turned off, each variant in a child
 * process of its own (`bench/lever-child.ts`), alternating in rotating order so that a slow
 * moment of the machine falls on every variant alike.
 *
 * A lever is turned off by a patch in `bench/levers/` applied to a copy of `src/` and `bench/`
 * (in a temp folder that shares `node_modules`), so the shipped code carries no switches for it.
 * A patch that no longer applies fails the run (and `test/unit/bench-levers.test.ts`), naming the
 * patch to refresh.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { adminQuery, withDatabase } from '../scripts/database-admin.js';
import { runMigrations } from '../src/migrate.js';
import type { LeverSample } from './lever-child.js';
import { runJsonChild } from './json-child.js';
import { stats } from './measure.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The patches that each turn one lever off, named `<lever>-<what comes back>.patch`. */
export const LEVER_PATCHES = path.join(ROOT, 'bench', 'levers');

/** What each lever does, as the report names it. */
const LEVERS: Record<string, string> = {
  '1': 'one flush, then clear the fork (off: `em.transactional` flushes again and merges)',
  '2': 'one managed vault reference a push (off: `ref(Vault, id)` per new record)',
  '3': 'ciphertext type without copies (off: `BlobType`, which copies the buffer per snapshot)',
  '4': "record scalars outside auto-flush tracking, `trackChanges: false` (off: tracked, an accessor per scalar per instance)",
  '5': "version predicate on the batched UPDATE (off: MikroORM's lock-check SELECT first)",
  '6': 'settings and claim on the lock read (off: a statement of their own first)',
};

/** One lever's figures for one push kind. */
export interface LeverRow {
  lever: string;
  description: string;
  push: string;
  /** Median ms with the lever, and without it. */
  withMs: number;
  withoutMs: number;
  /** Statements of one push with the lever, and without it. */
  withStatements: number;
  withoutStatements: number;
}

/** The per-lever figures and how they were taken. */
export interface LeverResult {
  rounds: number;
  reps: number;
  vaultSize: number;
  rows: LeverRow[];
}

interface Variant {
  name: string;
  dir: string;
}

function child(variant: Variant, url: string, vaultSize: number, reps: number): Promise<LeverSample> {
  return runJsonChild<LeverSample>(path.join(variant.dir, 'bench', 'lever-child.ts'), [], variant.dir, { BENCH_DATABASE_URL: url, BENCH_VAULT: String(vaultSize), BENCH_REPS: String(reps) });
}

/** A copy of this checkout's code with `patch` applied, sharing its `node_modules`. */
async function patchedCopy(scratch: string, patch: string): Promise<string> {
  const dir = path.join(scratch, path.basename(patch, '.patch'));
  for (const entry of ['src', 'bench', 'package.json', 'tsconfig.json']) {
    await cp(path.join(ROOT, entry), path.join(dir, entry), { recursive: true, filter: (from) => !from.includes(`${path.sep}results`) });
  }
  await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  try {
    await run('git', ['apply', patch], { cwd: dir });
  } catch (error) {
    throw new Error(`bench/levers/${path.basename(patch)} no longer applies to src/; make the lever's change off again by hand and refresh the patch (git diff > it)`, { cause: error });
  }
  return dir;
}

/**
 * A fresh, migrated database on the server of `serverUrl` for one child, dropped after it.
 *
 * Each child seeds and deletes some 100,000 records; in a database shared by all of them the
 * pushes grew slower child after child (the 100-change push from 35 to 190 ms over one run), so a
 * variant's figure depended on where the rotation put it, and the every-lever variant, which every
 * row compares against, came out slower than each variant with a lever off.
 */
async function inFreshDatabase<T>(serverUrl: string, work: (url: string) => Promise<T>): Promise<T> {
  const database = `vault_db_levers_${randomBytes(4).toString('hex')}`;
  await adminQuery(serverUrl, `create database "${database}"`);
  try {
    const url = withDatabase(serverUrl, database);
    await runMigrations({ url, log: () => {} });
    return await work(url);
  } finally {
    await adminQuery(serverUrl, `drop database if exists "${database}" with (force)`);
  }
}

/**
 * Times every variant `rounds` times, `reps` pushes of each kind per child, each child in a fresh
 * database of its own on the server of `serverUrl` (see {@link inFreshDatabase}).
 */
export async function leverScenario(serverUrl: string, rounds: number, reps: number, vaultSize: number, log: (line: string) => void): Promise<LeverResult> {
  const scratch = await mkdtemp(path.join(tmpdir(), 'vault-db-levers-'));
  try {
    const patches = (await readdir(LEVER_PATCHES)).filter((f) => f.endsWith('.patch')).sort();
    const all: Variant = { name: 'all', dir: ROOT };
    const variants: Variant[] = [all];
    for (const patch of patches) variants.push({ name: patch.split('-')[0] as string, dir: await patchedCopy(scratch, path.join(LEVER_PATCHES, patch)) });
    const samples = new Map<string, LeverSample[]>(variants.map((v) => [v.name, []]));
    // The first child of a run came out 10-30% slower than the second in each of three runs (a
    // cold server and page cache, most likely); a first child whose figures are thrown away takes it.
    log('  warm-up child (not counted)');
    await inFreshDatabase(serverUrl, (url) => child(all, url, vaultSize, 1));
    for (let round = 0; round < rounds; round++) {
      // Rotated each round, so no variant always runs first (or right after the same neighbour).
      const order = variants.map((_, i) => variants[(i + round) % variants.length] as Variant);
      for (const variant of order) {
        log(`  round ${round + 1} of ${rounds}: ${variant.name === 'all' ? 'every lever' : `lever ${variant.name} off`}`);
        const sample = await inFreshDatabase(serverUrl, (url) => child(variant, url, vaultSize, reps));
        samples.get(variant.name)?.push(sample);
        // Each child's own medians, so a bimodal variant (one slow child among fast ones) shows.
        log(`    ${sample.pushes.map((p) => `${p.name} ${stats(p.ms).median.toFixed(1)} ms`).join(', ')}`);
      }
    }
    const figures = (name: string, push: number) => {
      const runs = samples.get(name) ?? [];
      return { ms: stats(runs.flatMap((s) => s.pushes[push]?.ms ?? [])).median, statements: runs[0]?.pushes[push]?.statements ?? Number.NaN };
    };
    const rows: LeverRow[] = [];
    const kinds = samples.get('all')?.[0]?.pushes.map((p) => p.name) ?? [];
    for (const variant of variants.filter((v) => v.name !== 'all')) {
      kinds.forEach((push, i) => {
        const withLever = figures('all', i);
        const without = figures(variant.name, i);
        rows.push({ lever: variant.name, description: LEVERS[variant.name] ?? variant.name, push, withMs: withLever.ms, withoutMs: without.ms, withStatements: withLever.statements, withoutStatements: without.statements });
      });
    }
    rows.sort((a, b) => a.lever.localeCompare(b.lever));
    return { rounds, reps, vaultSize, rows };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
