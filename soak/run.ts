/**
 * `npm run soak`: many simulated devices of several users work against one SyncService on real
 * PostgreSQL, optionally while connections die under them (`--faults`), then every device pulls
 * and the invariants are checked. Prints a summary; exits 1 on any violation or when the run fell
 * short of its minimum counts of work (minimums.ts), 2 when the run itself broke. A failure
 * prints the seed and the command that replays the same workload.
 *
 *   npm run soak -- --quick                       # CI: 2 users x 3 devices, faults and purges, < 1 minute
 *   npm run soak -- --quick --restarts            # and PostgreSQL restarted mid-run (a private embedded server)
 *   npm run soak -- --users 8 --devices 4 --ops 300 --faults --purges --seed 42
 *
 * Modes: `--faults` (backends terminated, sockets cut), `--purges` (tombstones purged mid-run, and
 * a device per user that sleeps through purges; purges.ts), `--restarts` (the server itself
 * restarted; restarts.ts). A pass needs zero violations and the minimum counts of minimums.ts.
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
import { DirectProbe, installPurgeLog, Purger, readPurgeLog, type PurgedRecord } from './purges.js';
import { CallTracker, CommandRestarter, EmbeddedRestarter, RestartLoop, type RestartFact, type RestartHits, type ServerRestarter } from './restarts.js';
import { defaultMinimums, describeMinimums, shortfalls, type Minimums, type RunCounts } from './minimums.js';
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
  purges: boolean;
  restarts: boolean;
  /** Shell command that restarts the server behind `DATABASE_URL`; null: a private embedded server. */
  restartCommand: string | null;
  records: number;
  batch: number;
  pool: number;
}

const DEFAULTS: Omit<SoakConfig, 'seed'> = { users: 4, devices: 3, ops: 200, durationMs: 120_000, faults: false, purges: false, restarts: false, restartCommand: null, records: 16, batch: 4, pool: 8 };
/** `--quick`: what CI runs. Small enough for well under a minute on 2 cores, faults and purges included. */
const QUICK: Omit<SoakConfig, 'seed'> = { users: 2, devices: 3, ops: 120, durationMs: 30_000, faults: true, purges: true, restarts: false, restartCommand: null, records: 12, batch: 4, pool: 6 };
/** How long a sleeping device waits for a purge to pass its cursor before it goes on without one. */
const MAX_SLEEP_MS = 12_000;
/** Share of a sleeper's steps that fall asleep (its first step always does). */
const SLEEP_RATE = 0.2;
/** After the work stops: time for the final pulls and the checks before the run counts as hung. */
const GRACE_MS = 90_000;

const USAGE = `usage: npm run soak -- [--quick] [--users M] [--devices N] [--ops K] [--seed S] [--duration-ms D] [--faults]
                          [--purges] [--restarts [--restart-command CMD]] [--records R] [--batch B] [--pool P]
  --quick        preset for CI: 2 users x 3 devices, 120 ops each, --faults, --purges, 30 s at most
  --users        users, each with a vault of its own (default ${DEFAULTS.users})
  --devices      devices per user (default ${DEFAULTS.devices})
  --ops          steps per device (default ${DEFAULTS.ops})
  --seed         seed of the workload (default: random, printed)
  --duration-ms  devices stop after this long even if steps remain (default ${DEFAULTS.durationMs})
  --faults       terminate backends and cut sockets at random moments (--no-faults: none, even with --quick)
  --purges       purge tombstones at random moments, and give each user one more device that sleeps
                 through purges and must be refused (ResyncRequiredError) when it wakes (--no-purges: none)
  --restarts     restart PostgreSQL itself (fast shutdown, start on the same data dir and port) at
                 random moments. Without DATABASE_URL: a private embedded server of the run's own.
                 With DATABASE_URL: --restart-command is required
  --restart-command  shell command that restarts the server behind DATABASE_URL, run for each
                 restart; on the Neon-shaped stack: 'scripts/neon-stack.sh restart'
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
      purges: { type: 'boolean' },
      restarts: { type: 'boolean' },
      'restart-command': { type: 'string' },
      records: { type: 'string' },
      batch: { type: 'string' },
      pool: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    // --no-faults, --no-purges: take a mode out of the --quick preset.
    allowNegative: true,
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
    purges: values.purges ?? base.purges,
    restarts: values.restarts ?? base.restarts,
    restartCommand: values['restart-command']?.trim() || null,
    records: int('records', values.records, base.records, 1, 100_000),
    batch: int('batch', values.batch, base.batch, 1, 1000),
    pool: int('pool', values.pool, base.pool, 1, 100),
  };
}

/** The command that replays this run's workload. */
function replayCommand(c: SoakConfig): string {
  return (
    `npm run soak -- --users ${c.users} --devices ${c.devices} --ops ${c.ops} --seed ${c.seed} --duration-ms ${c.durationMs}` +
    `${c.faults ? ' --faults' : ''}${c.purges ? ' --purges' : ''}${c.restarts ? ' --restarts' : ''}` +
    `${c.restartCommand ? ` --restart-command '${c.restartCommand.replaceAll("'", "'\\''")}'` : ''} --records ${c.records} --batch ${c.batch} --pool ${c.pool}`
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
    // Behind PgBouncer a restart refuses logins for server_login_retry (15 s by default) after
    // one failed during the downtime: every attempt gets a TransientError, as promised, for that
    // long. A client keeps retrying; the budget only has to catch a call that never recovers.
    maxAttempts: c.restarts ? 1000 : 200,
    thinkMs: 3,
  };
}

/**
 * What restarts promise beyond the invariants: every call in flight at a restart succeeded or
 * failed with a `TransientError` (a resync refusal is a typed answer too), and the same pool
 * answered calls again after the last restart (no process restart needed; the final pulls count).
 */
function restartViolations(loop: RestartLoop | null, tracker: CallTracker, ledger: Ledger): Violation[] {
  if (!loop) return [];
  const out: Violation[] = tracker.hits.other.map((message) => ({ invariant: 'restarts', message: `a call in flight during a restart ended as ${message}` }));
  const last = loop.restarts.at(-1);
  if (last && ledger.counters.pushes + ledger.counters.pulls <= last.answeredAfter) {
    out.push({ invariant: 'restarts', message: 'no push or pull was answered after the last restart: the pool did not reconnect' });
  }
  return out;
}

/** Runs `work` on a connection of its own to `url`. */
async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(pgConnectionConfig(url));
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
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
  /** Rows removed by purges, from the audit log. */
  purged: PurgedRecord[];
  /** Devices that sleep through purges. */
  sleepers: number;
  restarts: RestartFact[];
  restartHits: RestartHits;
}

/**
 * Runs the soak on a scratch database of the server. `serverUrl` is a direct URL (creating the
 * database, migrations, the fault injector's kills by pid, the final read); `pooledServerUrl` is
 * the one the devices' ORM uses (through a pooler, when there is one).
 */
async function soak(config: SoakConfig, serverUrl: string, pooledServerUrl: string, stopRequested: () => boolean, restarter: ServerRestarter | null): Promise<RunReport> {
  const started = Date.now();
  const dbName = `vault_db_soak_${config.seed.toString(16)}_${randomBytes(3).toString('hex')}`;
  await adminQuery(serverUrl, `create database "${dbName}"`);
  const url = withDatabase(serverUrl, dbName);
  const pooledUrl = withDatabase(pooledServerUrl, dbName);
  let proxy: TcpProxy | null = null;
  let orm: MikroORM | null = null;
  let probe: DirectProbe | null = null;
  let maintenance: MikroORM | null = null;
  try {
    await runMigrations({ url, log: () => {} });
    if (config.purges) await withClient(url, installPurgeLog);
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
    // Every call the devices and the purger make is tracked, so a restart knows which it hit.
    const tracker = new CallTracker();
    const sync = tracker.wrap(new SyncService(orm.em, { lockTimeoutMs: 5000 }));

    const devices: Device[] = [];
    const sleepers = new Set<Device>();
    const users: string[] = [];
    const options = deviceOptions(config);
    for (let u = 0; u < config.users; u++) {
      const userId = `user_${u}_${config.seed}`;
      users.push(userId);
      await sync.enableVault(userId, { wrappedKey: randomBytes(60), salt: randomBytes(16), kdfParams: { algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 } });
      // With purges, one more device per user: it works like the others, and now and then sleeps through a purge.
      for (let d = 0; d < config.devices + (config.purges ? 1 : 0); d++) {
        const device = new Device(sync, userId, u, d, new Rng(deriveSeed(config.seed, `device ${u}.${d}`)), ledger, options);
        devices.push(device);
        if (d === config.devices) sleepers.add(device);
      }
    }

    const faults = config.faults ? new FaultInjector(url, SOAK_APP_NAME, proxy, new Rng(deriveSeed(config.seed, 'faults'))) : null;
    if (config.purges) {
      maintenance = await MikroORM.init(
        createConfig(url, { pool: { min: 0, max: 2 }, driverOptions: { connection: { application_name: 'soak-purger' }, log: { warn: () => {}, error: () => {}, deprecate: () => {}, debug: () => {} } } }),
      );
    }
    probe = config.purges ? new DirectProbe(url) : null;
    const sleepingUsers = () => probe?.sleepers() ?? [];
    const purger = maintenance ? new Purger(tracker.wrap(new SyncService(maintenance.em, { lockTimeoutMs: 5000 })), users, new Rng(deriveSeed(config.seed, 'purges')), ledger, sleepingUsers) : null;
    const sleepRng = new Rng(deriveSeed(config.seed, 'sleeps'));
    await faults?.start();
    purger?.start();
    const workStarted = Date.now();
    const deadline = workStarted + config.durationMs;
    const restarts = restarter ? new RestartLoop(restarter, tracker, new Rng(deriveSeed(config.seed, 'restarts')), deadline, () => ledger.counters.pushes + ledger.counters.pulls) : null;
    restarts?.start();
    let stepsDone = 0;
    let lastProgress = Date.now();
    const totalSteps = devices.length * config.ops;
    try {
      await Promise.all(
        devices.map(async (device) => {
          const working = () => Date.now() < deadline && !stopRequested();
          for (let i = 0; i < config.ops && working(); i++) {
            if (probe && sleepers.has(device) && (i === 0 || sleepRng.chance(SLEEP_RATE))) await device.sleepThroughPurge(probe, working, MAX_SLEEP_MS);
            else await device.step();
            stepsDone++;
            if (process.stdout.isTTY && Date.now() - lastProgress > 1000) {
              lastProgress = Date.now();
              process.stdout.write(`\r  ${stepsDone}/${totalSteps} steps, ${ledger.counters.pushes} pushes, ${faults?.total ?? 0} faults`);
            }
          }
        }),
      );
    } finally {
      await restarts?.stop();
      await purger?.stop();
      await faults?.stop();
      if (process.stdout.isTTY) process.stdout.write('\r\x1b[K');
    }
    const workMs = Date.now() - workStarted;

    // Quiet now: every device pulls to the end of its feed, then the invariants are judged.
    for (const device of devices) await device.pullToEnd();
    const server = await readServerState(url);
    const purged = config.purges ? await withClient(url, readPurgeLog) : [];
    if (restarts?.failure) throw restarts.failure;
    const violations = [...checkInvariants({ ledger, devices, server, purged }), ...restartViolations(restarts, tracker, ledger)];
    return {
      devices: devices.length,
      elapsedMs: Date.now() - started,
      workMs,
      stepsDone,
      faults: faults ? { ...faults.stats } : { terminated: 0, cut: 0, injectorErrors: 0 },
      ledger,
      violations,
      serverRecords: server.length,
      purged,
      sleepers: sleepers.size,
      restarts: restarts?.restarts ?? [],
      restartHits: tracker.hits,
    };
  } finally {
    await probe?.close().catch(() => {});
    await maintenance?.close(true).catch(() => {});
    await orm?.close(true).catch(() => {});
    await proxy?.close().catch(() => {});
    await adminQuery(serverUrl, `drop database if exists "${dbName}" with (force)`).catch((error: unknown) => {
      console.error(`soak: could not drop the scratch database ${dbName}: ${String(error)}`);
    });
  }
}

const n = (value: number) => value.toLocaleString('en-US');

/** The minimum counts this run must reach to pass (see minimums.ts). */
function minimumsOf(c: SoakConfig): Minimums {
  return defaultMinimums({ devices: c.users * c.devices, ops: c.ops, faults: c.faults, purges: c.purges, restarts: c.restarts });
}

/** What the run did, as the minimums count it. */
function runCounts(report: RunReport): RunCounts {
  const c = report.ledger.counters;
  const refusedWakes = report.ledger.staleWakes.filter((w) => w.outcome === 'resync').length;
  return { pushes: c.pushes, pulls: c.pulls, faults: report.faults.terminated + report.faults.cut, purges: c.effectivePurges, restarts: report.restarts.length, staleWakes: refusedWakes };
}

/** `4 (server away 310 to 820 ms); 23 calls in flight: 20 TransientError, 3 succeeded, 0 other` */
function restartSummary(report: RunReport): string {
  const h = report.restartHits;
  const down = report.restarts.map((r) => r.downMs);
  const away = down.length ? ` (server away ${Math.min(...down)} to ${Math.max(...down)} ms)` : '';
  return `${report.restarts.length}${away}; ${n(h.calls)} calls in flight: ${n(h.transient)} TransientError, ${n(h.succeeded)} succeeded, ${n(h.resync)} refused for a resync, ${h.other.length} other`;
}

/** `5 devices woke past a purge (5 refused for a resync, ...)` */
function staleWakes(report: RunReport): string {
  const wakes = report.ledger.staleWakes;
  const count = (outcome: string) => wakes.filter((w) => w.outcome === outcome).length;
  const carried = wakes.reduce((sum, w) => sum + w.carriedPurged, 0);
  return (
    `${wakes.length} devices woke past a purge (${count('resync')} refused for a resync, ${wakes.filter((w) => !w.withCursor).length} pushed without a cursor, ` +
    `${carried} edits of purged records carried; ${count('applied')} applied, ${count('conflicts only')} conflicts only, ${count('gave up')} gave up)`
  );
}

function printSummary(config: SoakConfig, report: RunReport): void {
  const c = report.ledger.counters;
  const rows: [string, string][] = [
    ['devices', `${report.devices} (${config.users} users x ${config.devices}${report.sleepers ? ', plus 1 sleeper each' : ''}), ${n(report.stepsDone)} steps in ${(report.workMs / 1000).toFixed(1)} s`],
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
    [
      'purges',
      config.purges
        ? `${n(c.purges)} (${n(c.effectivePurges)} removed ${n(c.purgedTombstones)} tombstones; ${n(c.purgeTransientErrors)} failed with a TransientError)`
        : '0 (run with --purges)',
    ],
    ['resyncs', `${n(report.ledger.resyncs.length)} ResyncRequiredErrors, ${n(c.resyncs)} full pulls, ${n(c.droppedForResync)} changes dropped for them`],
    ...(config.purges ? ([['stale wakes', staleWakes(report)]] as [string, string][]) : []),
    ['restarts', config.restarts ? restartSummary(report) : '0 (run with --restarts)'],
    ['records at the end', n(report.serverRecords)],
    ['minimums', describeMinimums(runCounts(report), minimumsOf(config))],
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

  const fromEnv = process.env.DATABASE_URL?.trim();
  if (config.restarts && fromEnv && !config.restartCommand) {
    console.error(
      'soak: --restarts restarts the server itself. Without DATABASE_URL the run starts a private embedded server for it; ' +
        "with DATABASE_URL, say how to restart that server with --restart-command (on the Neon-shaped stack: 'scripts/neon-stack.sh restart').",
    );
    return 2;
  }
  if (config.restartCommand && !config.restarts) {
    console.error('soak: --restart-command needs --restarts');
    return 2;
  }
  let restarter: ServerRestarter | null = null;
  let report: RunReport;
  try {
    // A private server for restarts: the shared embedded one may serve other processes (npm test).
    const embedded = config.restarts && !fromEnv ? await EmbeddedRestarter.start() : null;
    restarter = embedded ?? (config.restartCommand ? new CommandRestarter(config.restartCommand) : null);
    const target = embedded ? { url: embedded.url, source: 'embedded' as const } : await resolveDatabaseUrl();
    // Set up and inject faults through DIRECT_URL: a pooler can't create a session to kill by pid.
    const direct = process.env.DIRECT_URL?.trim() && fromEnv ? process.env.DIRECT_URL.trim() : target.url;
    console.log(
      `soak: seed ${config.seed}, ${config.users} users x ${config.devices} devices, ${config.ops} steps each, ${config.faults ? 'with' : 'without'} faults, ` +
        `${config.purges ? 'with' : 'without'} purges, ${config.restarts ? 'with' : 'without'} restarts, ` +
        `on ${target.source === 'embedded' ? `${embedded ? 'a private' : 'the'} embedded PostgreSQL` : redactUrl(target.url)}`,
    );
    report = await soak(config, direct, target.url, () => stop, restarter);
  } catch (error) {
    console.error(`soak: FAILED: the run broke: ${(error as Error).stack ?? String(error)}\n  seed ${config.seed}; replay: ${replayCommand(config)}`);
    return 2;
  } finally {
    await restarter?.close().catch((error: unknown) => console.error(`soak: could not stop the private server: ${String(error)}`));
  }
  clearTimeout(hung);
  printSummary(config, report);
  const short = shortfalls(runCounts(report), minimumsOf(config));
  if (report.violations.length === 0 && short.length === 0) return 0;
  if (short.length > 0) {
    // Zero violations in a run that did next to nothing prove nothing: it fails too.
    console.log(`\nsoak: FAILED: the run did not reach its minimum counts: ${short.map((s) => `${s.count} ${s.reached} of at least ${s.minimum}`).join(', ')}`);
    console.log('  (too short a --duration-ms, too few --ops, or a server too slow to answer; a pass needs the work done)');
  }
  if (report.violations.length > 0) {
    console.log(`\nsoak: FAILED: ${report.violations.length} violation(s); the first ones:`);
    for (const v of report.violations.slice(0, 25)) console.log(`  [${v.invariant}] ${v.message}`);
  }
  console.log(`\n  seed ${config.seed}; replay the workload with:\n  ${replayCommand(config)}`);
  console.log('  (the seed fixes every device\'s choices and the fault schedule; the interleaving of devices still depends on timing)');
  return 1;
}

const code = await main();
// The embedded server stops on exit (see src/embedded-postgres.ts).
process.exit(code);
