/**
 * `npx tsx bench/claim-cost.ts [--reps=N]`: what signed identity claims cost a push and a pull.
 *
 * The service runs as a non-owner application role (the production setup), so row-level security
 * applies, on `DATABASE_URL` or else the embedded PostgreSQL, in a scratch database it creates and
 * drops. Two modes alternate on the same data:
 *  - `claim`: the shipped policies, `user_id = (select vault_db_current_user())`, which verifies
 *    the HMAC of `app.user_claim` once per statement;
 *  - `setting`: the honour system of before, `user_id = current_setting('app.user_id', true)`.
 * Only the policies change between modes (ALTER POLICY), so the difference is the policies' cost.
 * The service's own check of its claim, in the first statement of each transaction, runs in both
 * modes; it is timed separately, as are the function's first call in a new session (PL/pgSQL
 * compiles it then) and signing in node. Prints a markdown report; the numbers are wall-clock
 * medians.
 *
 * @module
 */
import { createHmac, randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { adminQuery, withDatabase } from '../scripts/database-admin.js';
import { createConfig } from '../src/config.js';
import { checkDatabaseReachable } from '../src/database-url.js';
import { resolveDatabaseUrlOrEmbedded as resolveDatabaseUrl } from '../src/embedded.js';
import { startEmbeddedPostgres } from '../src/embedded-postgres.js';
import { runMigrations } from '../src/migrate.js';
import { signClaim } from '../src/sync/claim.js';
import { SyncService } from '../src/sync/sync-service.js';

const VAULT_RECORDS = 10_000;
const BATCH = 100;
const PAGE = 1000;

type Mode = 'claim' | 'setting';

const SETTING_POLICIES = ['vaults', 'records'].flatMap((t) => [
  `alter policy ${t}_owner_only on public.${t} using (user_id = current_setting('app.user_id', true)) with check (user_id = current_setting('app.user_id', true))`,
]);
const CLAIM_POLICIES = ['vaults', 'records'].flatMap((t) => [
  `alter policy ${t}_owner_only on public.${t} using (user_id = (select public.vault_db_current_user())) with check (user_id = (select public.vault_db_current_user()))`,
]);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function main(): Promise<void> {
  const reps = Number(process.argv.find((a) => a.startsWith('--reps='))?.slice(7) ?? 40);
  const target = await resolveDatabaseUrl();
  const version = await checkDatabaseReachable(target);
  const name = `vault_db_claim_cost_${randomBytes(4).toString('hex')}`;
  const roleName = `vault_app_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery(target.url, `create database "${name}"`);
  const url = withDatabase(target.url, name);
  const owner = new pg.Pool({ ...pgConnectionConfig(url), max: 2 });
  let orm: MikroORM | undefined;
  try {
    await runMigrations({ url, log: () => {} });
    const setMode = async (mode: Mode) => {
      for (const sql of mode === 'claim' ? CLAIM_POLICIES : SETTING_POLICIES) await owner.query(sql);
    };

    const password = randomBytes(12).toString('hex');
    await owner.query(`create role "${roleName}" login password '${password}' nosuperuser nocreatedb nocreaterole nobypassrls`);
    await owner.query(`grant usage on schema public to "${roleName}"`);
    await owner.query(`grant select, insert, update, delete on vaults, records to "${roleName}"`);
    await owner.query(`grant execute on function public.vault_db_current_user() to "${roleName}"`);
    const key = (await owner.query<{ key: Buffer }>('select key from vault_db_claim_key')).rows[0]?.key as Buffer;
    const appUrl = new URL(url);
    appUrl.username = roleName;
    appUrl.password = password;
    orm = await MikroORM.init(createConfig(appUrl.toString(), { pool: { min: 1, max: 2 } }));
    const sync = new SyncService(orm.em, { claimKey: key });

    const user = `bench_${randomBytes(4).toString('hex')}`;
    await sync.enableVault(user, { wrappedKey: randomBytes(60), salt: randomBytes(16), kdfParams: { algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 } });
    const versions = new Map<string, number>();
    for (let i = 0; i < VAULT_RECORDS; i += 1000) {
      const changes = Array.from({ length: 1000 }, (_, j) => ({ recordId: `r${i + j}`, baseVersion: 0, ciphertext: randomBytes(256) }));
      await sync.push(user, { changes });
      for (const c of changes) versions.set(c.recordId, 1);
    }
    let cursor = (await sync.pull(user, { limit: 1 })).cursor;
    while (true) {
      const page = await sync.pull(user, { cursor, limit: PAGE });
      cursor = page.cursor;
      if (!page.hasMore) break;
    }

    const times: Record<Mode, { push: number[]; pull: number[]; fullPage: number[] }> = {
      claim: { push: [], pull: [], fullPage: [] },
      setting: { push: [], pull: [], fullPage: [] },
    };
    let next = 0;
    for (let rep = -3; rep < reps; rep++) {
      for (const mode of (rep % 2 === 0 ? ['claim', 'setting'] : ['setting', 'claim']) as Mode[]) {
        await setMode(mode);
        const changes = Array.from({ length: BATCH }, () => {
          const recordId = `r${next++ % VAULT_RECORDS}`;
          return { recordId, baseVersion: versions.get(recordId) as number, ciphertext: randomBytes(256) };
        });
        let t = performance.now();
        const pushed = await sync.push(user, { changes, cursor });
        const push = performance.now() - t;
        if (pushed.applied.length !== BATCH) throw new Error('a benchmark push conflicted');
        for (const a of pushed.applied) versions.set(a.recordId, a.version);
        t = performance.now();
        const pulled = await sync.pull(user, { cursor, limit: PAGE });
        const pull = performance.now() - t;
        if (pulled.changes.length !== BATCH) throw new Error(`expected ${BATCH} changes, pulled ${pulled.changes.length}`);
        cursor = pulled.cursor;
        t = performance.now();
        const full = await sync.pull(user, { cursor: null, limit: PAGE });
        const fullPage = performance.now() - t;
        if (full.changes.length !== PAGE) throw new Error('short full page');
        if (rep >= 0) {
          times[mode].push.push(push);
          times[mode].pull.push(pull);
          times[mode].fullPage.push(fullPage);
        }
      }
    }
    await setMode('claim');

    // The function alone, per call: a STABLE function in a select list runs once per row.
    const app = new pg.Client(pgConnectionConfig(appUrl.toString()));
    await app.connect();
    const perCall: number[] = [];
    const calls = 20_000;
    try {
      await app.query('begin');
      await app.query(`select set_config('app.user_id', $1, true), set_config('app.user_claim', $2, true)`, [user, signClaim(key, user, Math.floor(Date.now() / 1000) + 600)]);
      for (let i = 0; i < 7; i++) {
        const t = performance.now();
        const { rows } = await app.query<{ n: number }>(`select count(public.vault_db_current_user())::int as n from generate_series(1, ${calls})`);
        perCall.push(((performance.now() - t) * 1000) / calls);
        if (rows[0]?.n !== calls) throw new Error('the claim was not accepted');
      }
      await app.query('rollback');
    } finally {
      await app.end();
    }
    // The first call in a new session compiles the PL/pgSQL function: a one-off per connection.
    const firstCall: number[] = [];
    const secondCall: number[] = [];
    for (let i = 0; i < 7; i++) {
      const fresh = new pg.Client(pgConnectionConfig(appUrl.toString()));
      await fresh.connect();
      try {
        await fresh.query('begin');
        await fresh.query(`select set_config('app.user_id', $1, true), set_config('app.user_claim', $2, true)`, [user, signClaim(key, user, Math.floor(Date.now() / 1000) + 600)]);
        for (const into of [firstCall, secondCall]) {
          const t0 = performance.now();
          await fresh.query('select public.vault_db_current_user()');
          into.push(performance.now() - t0);
        }
      } finally {
        await fresh.end();
      }
    }
    const signs = 100_000;
    const signStart = performance.now();
    for (let i = 0; i < signs; i++) createHmac('sha256', key).update(`vault-db/app.user_claim/v1:${i}:${user}`).digest('hex');
    const signUs = ((performance.now() - signStart) * 1000) / signs;

    const row = (label: string, pick: (m: Mode) => number[]) => {
      const c = median(pick('claim'));
      const s = median(pick('setting'));
      return `| ${label} | ${c.toFixed(2)} | ${s.toFixed(2)} | ${(c - s).toFixed(2)} | ${(c / s).toFixed(3)}x |`;
    };
    const load = (await import('node:os')).loadavg()[0]?.toFixed(2);
    console.log(`Claim cost, ${new Date().toISOString()}, PostgreSQL ${version} (${target.source === 'embedded' ? 'embedded' : 'DATABASE_URL'}), load ${load}; the service as a non-owner role under RLS; vault of ${VAULT_RECORDS.toLocaleString('en')} records of 256 bytes; medians of ${reps} alternating repetitions.\n`);
    console.log('| call | claim policies (ms) | setting policies (ms) | difference (ms) | ratio |');
    console.log('|---|---:|---:|---:|---:|');
    console.log(row(`push of ${BATCH} updates`, (m) => times[m].push));
    console.log(row(`incremental pull of ${BATCH} changes`, (m) => times[m].pull));
    console.log(row(`full pull, first page of ${PAGE}`, (m) => times[m].fullPage));
    console.log(`\nvault_db_current_user() alone: ${median(perCall).toFixed(1)} µs a call (in SQL, median of 7 x ${calls.toLocaleString('en')} calls); the service calls it once per transaction to check its claim, and each claim-checked policy once per statement.`);
    console.log(`First call in a new session: ${median(firstCall).toFixed(2)} ms, the second ${median(secondCall).toFixed(2)} ms (round trip included; medians of 7 sessions).`);
    console.log(`Signing a claim in node: ${signUs.toFixed(1)} µs.`);
  } finally {
    await orm?.close(true);
    await owner.end();
    await adminQuery(target.url, `drop database if exists "${name}" with (force)`);
    await adminQuery(target.url, `drop role if exists "${roleName}"`);
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
