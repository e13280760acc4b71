/**
 * `npm run soak`: many simulated devices of several users work against one SyncService on real
 * PostgreSQL, optionally while connections die under them (`--faults`), then every device pulls
 * and the invariants are checked. Prints a summary; exits 1 on any violation, 2 when the run
 * itself broke. A failure prints the seed and the command that replays the same workload.
 *
 *   npm run soak -- --quick                       # CI: 2 users x 3 devices, with faults, < 1 minute
 *   npm run soak -- --users 8 --devices 4 --ops 300 --faults --seed 42
 *
 * It uses `DATABASE_URL`'s server, or the embedded PostgreSQL, and a scratch database of its own
 * that it creates, migrates and drops. With `DIRECT_URL` set too (a pooler in `DATABASE_URL`),
 * the devices go through `DATABASE_URL` and everything else (setup, killing backends) through
 * `DIRECT_URL`.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { adminQuery, withDatabase } from '../scripts/database-admin.js';
import { createConfig } from '../src/config.js';
import { pgConnectionConfig } from '../src/connection-options.js';
import { redactUrl } from '../src/database-url.js';
import { resolveDatabaseUrlOrEmbedded as resolveDatabaseUrl } from '../src/embedded.js';
import { runMigrations } from '../src/migrate.js';
import { SyncService } from '../src/sync/sync-service.js';
import { Device, type DeviceOptions } from './device.js';
import { FaultInjector, type FaultStats } from './faults.js';
import { checkInvariants, INVARIANTS, type ServerRecord, type Violation } from './invariants.js';
import { Ledger } from './ledger.js';
import { contentOf } from './payload.js';
import { deriveSeed, Rng } from './random.js';
import { TcpProxy } from './tcp-proxy.js';

/** The `application_name` of the ORM's connections; the fault injector kills only these. */
export const SOAK_APP_NAME = 'soak-app';

/** Everything that shapes a run. */
interface SoakConfig {
  users: number;
  devices: number;
  ops: number;
  seed: number;
  durationMs: number;
  faults: boolean;
  records: number;
  batch: number;
  pool: number;
}

const DEFAULTS: Omit<SoakConfig, 'seed'> = { users: 4, devices: 3, ops: 200, durationMs: 120_000, faults: false, records: 16, batch: 4, pool: 8 };
/** `--quick`: what CI runs. Small enough for well under a minute on 2 cores, faults included. */
const QUICK: Omit<SoakConfig, 'seed'> = { users: 2, devices: 3, ops: 120, durationMs: 30_000, faults: true, records: 12, batch: 4, pool: 6 };
/** After the work stops: time for the final pulls and the checks before the run counts as hung. */
const GRACE_MS = 90_000;

const USAGE = `usage: npm run soak -- [--quick] [--users M] [--devices N] [--ops K] [--seed S] [--duration-ms D] [--faults]
                          [--records R] [--batch B] [--pool P]
  --quick        preset for CI: 2 users x 3 devices, 120 ops each, --faults, 30 s at most
  --users        users, each with a vault of its own (default ${DEFAULTS.users})
  --devices      devices per user (default ${DEFAULTS.devices})
  --ops          steps per device (default ${DEFAULTS.ops})
  --seed         seed of the workload (default: random, printed)
  --duration-ms  devices stop after this long even if steps remain (default ${DEFAULTS.durationMs})
  --faults       terminate backends and cut sockets at random moments
  --records      record ids per vault, shared by its devices: fewer means more conflicts (default ${DEFAULTS.records})
  --batch        most changes per push (default ${DEFAULTS.batch})
  --pool         connections in the ORM's pool (default ${DEFAULTS.pool})`;

function parseConfig(argv: string[]): SoakConfig {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      users: { type: 'string' },
      devices: { type: 'string' },
      ops: { type: 'string' },
      seed: { type: 'string' },
      'duration-ms': { type: 'string' },
      faults: { type: 'boolean' },
      records: { type: 'string' },
      batch: { type: 'string' },
      pool: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const base = values.quick ? QUICK : DEFAULTS;
  const int = (name: string, value: string | undefined, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, not ${value}`);
    return n;
  };
  return {
    users: int('users', values.users, base.users, 1, 1000),
    devices: int('devices', values.devices, base.devices, 1, 100),
    ops: int('ops', values.ops, base.ops, 1, 1_000_000),
    seed: int('seed', values.seed, randomBytes(4).readUInt32BE(0), 0, 2 ** 32 - 1),
    durationMs: int('duration-ms', values['duration-ms'], base.durationMs, 100, 24 * 3600 * 1000),
    faults: values.faults ?? base.faults,
    records: int('records', values.records, base.records, 1, 100_000),
    batch: int('batch', values.batch, base.batch, 1, 1000),
    pool: int('pool', values.pool, base.pool, 1, 100),
  };
}

/** The command that replays this run's workload. */
function replayCommand(c: SoakConfig): string {
  return (
    `npm run soak -- --users ${c.users} --devices ${c.devices} --ops ${c.ops} --seed ${c.seed} --duration-ms ${c.durationMs}` +
    `${c.faults ? ' --faults' : ''} --records ${c.records} --batch ${c.batch} --pool ${c.pool}`
  );
}

function deviceOptions(c: SoakConfig): DeviceOptions {
  return {
    recordIds: Array.from({ length: c.records }, (_, i) => `bm-${String(i).padStart(4, '0')}`),
    maxBatch: c.batch,
    pullRate: 0.25,
    atomicRate: 0.2,
    lostResponseRate: 0.1,
    deleteRate: 0.2,
    maxMergeRounds: 4,
    maxAttempts: 200,
    thinkMs: 3,
  };
}

/** The final state of every vault, read as the tables' owner (row-level security does not apply). */
async function readServerState(url: string): Promise<ServerRecord[]> {
  const client = new pg.Client(pgConnectionConfig(url));
  await client.connect();
  try {
    const { rows } = await client.query<{ user_id: string; record_user: string; record_id: string; version: number; deleted: boolean; ciphertext: Buffer }>(
      `select v.user_id, r.user_id as record_user, r.record_id, r.version, r.deleted, r.ciphertext
         from records r join vaults v on v.id = r.vault_id order by v.user_id, r.record_id`,
    );
    return rows.map((r) => {
      if (r.record_user !== r.user_id) throw new Error(`record ${r.record_id} has user_id ${r.record_user} in the vault of ${r.user_id}`);
      return { user: r.user_id, recordId: r.record_id, version: r.version, deleted: r.deleted, content: contentOf(r.ciphertext, r.deleted) };
    });
  } finally {
    await client.end();
  }
}

interface RunReport {
  devices: number;
  elapsedMs: number;
  workMs: number;
  stepsDone: number;
  faults: FaultStats;
  ledger: Ledger;
  violations: Violation[];
  serverRecords: number;
}

/**
 * Runs the soak on a scratch database of the server. `serverUrl` is a direct URL (creating the
 * database, migrations, the fault injector's kills by pid, the final read); `pooledServerUrl` is
 * the one the devices' ORM uses (through a pooler, when there is one).
 */
async function soak(config: SoakConfig, serverUrl: string, pooledServerUrl: string, stopRequested: () => boolean): Promise<RunReport> {
  const started = Date.now();
  const dbName = `vault_db_soak_${config.seed.toString(16)}_${randomBytes(3).toString('hex')}`;
  await adminQuery(serverUrl, `create database "${dbName}"`);
  const url = withDatabase(serverUrl, dbName);
  const pooledUrl = withDatabase(pooledServerUrl, dbName);
  let proxy: TcpProxy | null = null;
  let orm: MikroORM | null = null;
  try {
    await runMigrations({ url, log: () => {} });
    proxy = config.faults ? await TcpProxy.start(pooledUrl) : null;
    const ledger = new Ledger();
    orm = await MikroORM.init(
      createConfig(proxy ? proxy.url : pooledUrl, {
        pool: { min: 0, max: config.pool },
        driverOptions: {
          connection: { application_name: SOAK_APP_NAME },
          // Knex warns on every pooled connection that dies; count them instead of printing.
          log: { warn: () => void ledger.counters.poolWarnings++, error: () => {}, deprecate: () => {}, debug: () => {} },
        },
      }),
    );
    const sync = new SyncService(orm.em, { lockTimeoutMs: 5000 });

    const devices: Device[] = [];
    const options = deviceOptions(config);
    for (let u = 0; u < config.users; u++) {
      const userId = `user_${u}_${config.seed}`;
      await sync.enableVault(userId, { wrappedKey: randomBytes(60), salt: randomBytes(16), kdfParams: { algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 } });
      for (let d = 0; d < config.devices; d++) {
        devices.push(new Device(sync, userId, u, d, new Rng(deriveSeed(config.seed, `device ${u}.${d}`)), ledger, options));
      }
    }

    const faults = config.faults ? new FaultInjector(url, SOAK_APP_NAME, proxy, new Rng(deriveSeed(config.seed, 'faults'))) : null;
    await faults?.start();
    const workStarted = Date.now();
    const deadline = workStarted + config.durationMs;
    let stepsDone = 0;
    let lastProgress = Date.now();
    const totalSteps = devices.length * config.ops;
    try {
      await Promise.all(
        devices.map(async (device) => {
          for (let i = 0; i < config.ops && Date.now() < deadline && !stopRequested(); i++) {
            await device.step();
            stepsDone++;
            if (process.stdout.isTTY && Date.now() - lastProgress > 1000) {
              lastProgress = Date.now();
              process.stdout.write(`\r  ${stepsDone}/${totalSteps} steps, ${ledger.counters.pushes} pushes, ${faults?.total ?? 0} faults`);
            }
          }
        }),
      );
    } finally {
      await faults?.stop();
      if (process.stdout.isTTY) process.stdout.write('\r\x1b[K');
    }
    const workMs = Date.now() - workStarted;

    // Quiet now: every device pulls to the end of its feed, then the invariants are judged.
    for (const device of devices) await device.pullToEnd();
    const server = await readServerState(url);
    const violations = checkInvariants({ ledger, devices, server });
    return {
      devices: devices.length,
      elapsedMs: Date.now() - started,
      workMs,
      stepsDone,
      faults: faults ? { ...faults.stats } : { terminated: 0, cut: 0, injectorErrors: 0 },
      ledger,
      violations,
      serverRecords: server.length,
    };
  } finally {
    await orm?.close(true).catch(() => {});
    await proxy?.close().catch(() => {});
    await adminQuery(serverUrl, `drop database if exists "${dbName}" with (force)`).catch((error: unknown) => {
      console.error(`soak: could not drop the scratch database ${dbName}: ${String(error)}`);
    });
  }
}

const n = (value: number) => value.toLocaleString('en-US');

function printSummary(config: SoakConfig, report: RunReport): void {
  const c = report.ledger.counters;
  const rows: [string, string][] = [
    ['devices', `${report.devices} (${config.users} users x ${config.devices}), ${n(report.stepsDone)} steps in ${(report.workMs / 1000).toFixed(1)} s`],
    ['pushes', `${n(c.pushes)} answered (${n(c.atomicPushes)} atomic)`],
    ['changes', `${n(c.changes)} sent, ${n(c.applied)} applied`],
    ['conflicts', `${n(c.conflicts)} (${n(c.merged)} merged and pushed again, ${n(c.abandoned)} edits dropped after ${deviceOptions(config).maxMergeRounds} rounds)`],
    ['pulls', `${n(c.pulls)} pages, ${n(c.pulledChanges)} changes`],
    ['retries', `${n(c.retries)} (${n(c.lostResponses)} lost responses re-sent, ${n(c.transientErrors)} TransientErrors)`],
    [
      'faults injected',
      config.faults
        ? `${n(report.faults.terminated + report.faults.cut)} (${n(report.faults.terminated)} backends terminated, ${n(report.faults.cut)} sockets cut)` +
          (report.faults.injectorErrors ? `; the injector's own queries failed ${report.faults.injectorErrors} times` : '')
        : '0 (run with --faults)',
    ],
    ['records at the end', n(report.serverRecords)],
    ['violations', String(report.violations.length)],
  ];
  console.log(`soak summary (seed ${config.seed}, ${(report.elapsedMs / 1000).toFixed(1)} s in all)`);
  for (const [label, value] of rows) console.log(`  ${label.padEnd(20)}${value}`);
  const byInvariant = INVARIANTS.map((name) => `${name} ${report.violations.filter((v) => v.invariant === name).length}`);
  console.log(`  ${''.padEnd(20)}${byInvariant.join(', ')}`);
}

async function main(): Promise<number> {
  let config: SoakConfig;
  try {
    config = parseConfig(process.argv.slice(2));
  } catch (error) {
    console.error(`soak: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  let stop = false;
  process.on('SIGINT', () => {
    if (stop) process.exit(130);
    stop = true;
    console.error('\nsoak: stopping after the current steps (Ctrl-C again to abort)');
  });
  const hung = setTimeout(() => {
    console.error(`soak: FAILED: the run did not stop within ${config.durationMs + GRACE_MS} ms (seed ${config.seed})\n  replay: ${replayCommand(config)}`);
    process.exit(2);
  }, config.durationMs + GRACE_MS);

  const target = await resolveDatabaseUrl();
  // Set up and inject faults through DIRECT_URL: a pooler can't create a session to kill by pid.
  const direct = process.env.DIRECT_URL?.trim() && process.env.DATABASE_URL?.trim() ? process.env.DIRECT_URL.trim() : target.url;
  console.log(
    `soak: seed ${config.seed}, ${config.users} users x ${config.devices} devices, ${config.ops} steps each, ${config.faults ? 'with' : 'without'} faults, ` +
      `on ${target.source === 'embedded' ? 'the embedded PostgreSQL' : redactUrl(target.url)}`,
  );
  let report: RunReport;
  try {
    report = await soak(config, direct, target.url, () => stop);
  } catch (error) {
    console.error(`soak: FAILED: the run broke: ${(error as Error).stack ?? String(error)}\n  seed ${config.seed}; replay: ${replayCommand(config)}`);
    return 2;
  }
  clearTimeout(hung);
  printSummary(config, report);
  if (report.violations.length === 0) return 0;
  console.log(`\nsoak: FAILED: ${report.violations.length} violation(s); the first ones:`);
  for (const v of report.violations.slice(0, 25)) console.log(`  [${v.invariant}] ${v.message}`);
  console.log(`\n  seed ${config.seed}; replay the workload with:\n  ${replayCommand(config)}`);
  console.log('  (the seed fixes every device\'s choices and the fault schedule; the interleaving of devices still depends on timing)');
  return 1;
}

const code = await main();
// The embedded server stops on exit (see src/embedded-postgres.ts).
process.exit(code);
