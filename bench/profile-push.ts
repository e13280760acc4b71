/**
 * Profiles one push scenario of the service with V8's CPU profiler, only while the pushes run
 * (not the seeding, the migrations or the process start), writes a `.cpuprofile` per push (open
 * them in Chrome DevTools) and prints where the time went.
 *
 * Usage: `tsx bench/profile-push.ts [--kind=update|create|mixed] [--size=1000] [--vault=10000] [--reps=5] [--out=DIR]`
 * (default: 1,000 updates into a vault of 10,000 records, 5 profiled pushes after 2 warm-ups,
 * written to `temp/profiles`). The same database rules as `npm run bench` apply: `DATABASE_URL`,
 * or the embedded PostgreSQL; a scratch database is created and dropped.
 *
 * For a whole-process profile instead: `node --cpu-prof --import tsx bench/profile-push.ts`.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { adminQuery, withDatabase } from '../scripts/database-admin.js';
import { createConfig } from '../src/config.js';
import { resolveDatabaseUrlOrEmbedded as resolveDatabaseUrl } from '../src/embedded.js';
import { startEmbeddedPostgres } from '../src/embedded-postgres.js';
import { encodeCursor } from '../src/sync/cursor.js';
import { runMigrations } from '../src/migrate.js';
import { SyncService } from '../src/sync/sync-service.js';
import { renderSummary, summarize, type CpuProfile } from './profile-summary.js';
import { analyze, benchUser, dropVaults, seedVault } from './seed.js';
import { liveVault, makeChanges, typicalMix, type ChangeMix } from './workload.js';

const WARM_UPS = 2;

function option(name: string, fallback: string): string {
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
}

function mixOf(kind: string, size: number): ChangeMix {
  if (kind === 'update') return { creates: 0, updates: size, deletes: 0 };
  if (kind === 'create') return { creates: size, updates: 0, deletes: 0 };
  if (kind === 'mixed') return typicalMix(size);
  throw new Error(`--kind must be update, create or mixed, not ${kind}`);
}

async function main(): Promise<void> {
  const kind = option('kind', 'update');
  const size = Number(option('size', '1000'));
  const vaultSize = Number(option('vault', '10000'));
  const reps = Number(option('reps', '5'));
  const outDir = path.resolve(option('out', 'temp/profiles'));
  const mix = mixOf(kind, size);

  const target = await resolveDatabaseUrl();
  const scratch = `vault_db_profile_${randomBytes(4).toString('hex')}`;
  await adminQuery(target.url, `create database "${scratch}"`);
  const url = withDatabase(target.url, scratch);
  const seedPool = new pg.Pool({ ...pgConnectionConfig(url), max: 2 });
  let orm: MikroORM | undefined;
  const session = new Session();
  session.connect();
  try {
    await runMigrations({ url, log: () => {} });
    orm = await MikroORM.init(createConfig(url));
    const service = new SyncService(orm.em as EntityManager);
    await session.post('Profiler.enable');
    // 200 µs: fine enough to see the flush's phases in a push of a few hundred ms.
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await mkdir(outDir, { recursive: true });
    const profiles: CpuProfile[] = [];
    const timings: number[] = [];
    for (let rep = 0; rep < WARM_UPS + reps; rep++) {
      const { seed, model } = liveVault(vaultSize, 256, rep + 1);
      const vault = await seedVault(seedPool, benchUser('profile'), seed);
      await analyze(seedPool);
      const changes = makeChanges(model, mix, 256);
      const profiled = rep >= WARM_UPS;
      if (profiled) await session.post('Profiler.start');
      const start = performance.now();
      await service.push(vault.userId, { changes, cursor: encodeCursor(vault.vaultId, seed.lastSeq) });
      const ms = performance.now() - start;
      if (profiled) {
        const { profile } = await session.post('Profiler.stop');
        profiles.push(profile as unknown as CpuProfile);
        timings.push(ms);
        await writeFile(path.join(outDir, `push-${kind}-${size}-${rep - WARM_UPS + 1}.cpuprofile`), JSON.stringify(profile));
      }
      await dropVaults(seedPool, [vault]);
    }
    console.log(`## Profile of SyncService.push: ${size} ${kind} changes into ${vaultSize.toLocaleString('en-US')} records`);
    console.log('');
    console.log(`Push times (ms): ${timings.map((t) => t.toFixed(0)).join(', ')}. Profiles in ${path.relative(process.cwd(), outDir)}/.`);
    console.log('');
    console.log(renderSummary(summarize(profiles, 30)));
  } finally {
    session.disconnect();
    await orm?.close(true);
    await seedPool.end();
    await adminQuery(target.url, `drop database if exists "${scratch}" with (force)`);
    if (target.source === 'embedded') await (await startEmbeddedPostgres()).stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(2);
  },
);
