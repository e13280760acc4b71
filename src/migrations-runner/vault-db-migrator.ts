/**
 * `VaultDbMigrator`: MikroORM's `Migrator`, with its `up()` and `down()` replaced by a runner
 * that is safe on a production database. It is registered as the migrator extension in
 * `createConfig`, so `runMigrations()` and the MikroORM CLI (`npm run db:migrate`, `db:rollback`)
 * run the very same code. Discovery of migrations, `migration:create` and `migration:check` stay
 * MikroORM's.
 *
 * A run:
 * 1. refuses a URL declared or detected to go through a transaction-mode pooler (pooler.ts);
 * 2. takes the migration lock on the one session it runs on (lock.ts), waiting at most
 *    `lockTimeoutMs` for another run;
 * 3. creates or completes the journal (journal.ts) and reads it under the lock;
 * 4. refuses, before changing anything, when the database lists migrations this code doesn't have
 *    (unless `onUnknownMigrations: 'warn'`) or when an applied migration's statements changed;
 * 5. applies each pending migration in a transaction of its own, with a transaction-local
 *    `lock_timeout` of `ddlLockTimeoutMs`, retried with a doubling pause when that wait runs out,
 *    recording it in the same transaction, and only if that transaction's backend holds the lock;
 *    a migration whose `isTransactional()` is false runs statement by statement outside any
 *    transaction, on the same session, and is recorded right after.
 *
 * One transaction per migration, not one for all: a long run doesn't hold the locks of its first
 * migration until the end, and a failure keeps the migrations before it (each complete and
 * recorded) while rolling back the failing one whole. Non-transactional migrations need this
 * too: `CREATE INDEX CONCURRENTLY` can't wait for the runner's own open transaction.
 *
 * @module
 */
import { Utils, type Constructor, type MigrateOptions, type MigrationRow, type MikroORM, type UmzugMigration } from '@mikro-orm/core';
import type { DatabaseSchema, EntityManager } from '@mikro-orm/postgresql';
import { Migrator, type Migration } from '@mikro-orm/migrations';
import { redactUrl } from '../database-url.js';
import { TransientError } from '../errors.js';
import { fingerprint, type MigrationFingerprint } from './checksum.js';
import { MigrationRefusedError } from './errors.js';
import { asVaultDbError, isLockTimeout, lockRetryDelayMs, lockRetryLine, lockWaitsExhausted, messageOf, migrationCodeFailed, statementFailed, textOf, transactionFailed } from './failures.js';
import { assertLockHeld, Journal, LEGACY_JOURNAL, type JournalRow } from './journal.js';
import { heldByThisBackend, MIGRATION_LOCK_KEY } from './lock.js';
import { MIGRATOR_DEFAULTS, migratorOptionsFromEnv, parseMigratorOptions, type MigratorOptions } from './options.js';
import { pooledDeclaration, probeForPooler } from './pooler.js';
import { MigrationSession, type SessionTransaction } from './session.js';

/** A migration found in the migrations folder (or `migrationsList`), not yet loaded. */
interface KnownMigration {
  name: string;
  path?: string;
  /** Loads the migration's module and returns a fresh instance. */
  create(): Promise<Migration>;
}

/**
 * umzug's `MigrationParams` and `RunnableMigration`, as MikroORM's Migrator passes them. Declared
 * here because umzug is MikroORM's dependency, not vault-db's: an app with an isolated
 * node_modules (pnpm, npm's linked strategy) could not resolve it from vault-db's types.
 */
interface MigrationParams {
  name: string;
  path?: string;
  context: unknown;
}
interface RunnableMigration {
  name: string;
  path?: string;
  up(params: MigrationParams): Promise<unknown>;
  down?(params: MigrationParams): Promise<unknown>;
}

type LoadableMigration = RunnableMigration & { create?: () => Promise<Migration> };

/** What one run of the migrator did. */
export interface MigrationRunReport {
  /** Migrations applied by this run, in order. */
  applied: string[];
  /** Migrations reverted by this run, in order. */
  reverted: string[];
  /** Migrations the journal listed when the run started (under the lock), in the order applied. */
  previouslyApplied: string[];
  /** Of those, the ones this code doesn't have (only with `onUnknownMigrations: 'warn'`). */
  unknownApplied: string[];
  /** Applied migrations that had no checksum yet and got one in this run. */
  checksumsRecorded: string[];
}

/** MikroORM's migrator with a production-safe `up()`/`down()` (see the module). */
export class VaultDbMigrator extends Migrator {
  private readonly entityManager: EntityManager;
  private settings: MigratorOptions;
  private readonly journal: Journal;

  constructor(em: EntityManager) {
    super(em);
    this.entityManager = em;
    // The CLI has no other channel for options; runMigrations() overrides them with configure().
    this.settings = { ...MIGRATOR_DEFAULTS, ...migratorOptionsFromEnv() };
    const [schema, table] = splitTableName(em.config.get('migrations').tableName ?? 'vault_db_migrations', em.config.get('schema') ?? 'public');
    this.journal = new Journal({ schema, table });
  }

  /** Registers this class as the migrator extension; put it in the config's `extensions`. */
  static override register(orm: MikroORM): void {
    orm.config.registerExtension('@mikro-orm/migrator', () => new VaultDbMigrator(orm.em as EntityManager));
  }

  /**
   * Changes the options of later runs (validated; see {@link MigratorOptions}).
   *
   * @throws ConfigurationError naming an invalid option
   */
  configure(options: Partial<MigratorOptions>): this {
    this.settings = { ...this.settings, ...parseMigratorOptions(options) };
    return this;
  }

  /** Applies the pending migrations (all, or as `options` selects); see the module for how. */
  override async up(options?: string | string[] | MigrateOptions): Promise<UmzugMigration[]> {
    return (await this.migrate('up', options)).applied.map((name) => ({ name }));
  }

  /** Reverts the last applied migration (or as `options` selects), each in its own transaction. */
  override async down(options?: string | string[] | MigrateOptions): Promise<UmzugMigration[]> {
    return (await this.migrate('down', options)).reverted.map((name) => ({ name }));
  }

  /** The journal's rows, read without creating the journal (an empty list when it doesn't exist). */
  override async getExecutedMigrations(): Promise<MigrationRow[]> {
    const connection = this.entityManager.getConnection();
    if (!(await this.journal.exists({ query: (sql) => connection.execute<{ present: boolean }[]>(sql) }))) return [];
    const rows = await connection.execute<{ id: number; name: string; executed_at: Date | string }[]>(`select * from ${this.journal.table} order by id`);
    return rows.map((row) => ({ ...row, executed_at: new Date(row.executed_at) }));
  }

  /** The migrations not in the journal, in the order they would be applied; read-only. */
  override async getPendingMigrations(): Promise<UmzugMigration[]> {
    const executed = new Set((await this.getExecutedMigrations()).map((row) => row.name));
    return (await this.listMigrations()).filter((m) => !executed.has(m.name)).map(({ name, path }) => ({ name, path }));
  }

  /**
   * The schema the committed snapshot describes (what the migrations produce, as MikroORM sees
   * it), for comparing it with the entities without writing anything; undefined without snapshot.
   */
  readSnapshot(): DatabaseSchema | undefined {
    return this.getSchemaFromSnapshot();
  }

  /**
   * Runs the migrations in `direction` and reports what it did.
   *
   * @throws MigrationRefusedError when the URL is pooled, the database is ahead of the code, an
   *   applied migration changed, or a transaction ran without the lock
   * @throws TransientError when the lock or a table lock could not be had in time, or the
   *   connection was lost; what the message says was applied is applied, the rest is not
   * @throws DatabaseError when a migration's statement failed; that migration was rolled back
   */
  async migrate(direction: 'up' | 'down', options?: string | string[] | MigrateOptions): Promise<MigrationRunReport> {
    const selection = this.parseSelection(direction, options);
    const url = this.entityManager.config.get('clientUrl') ?? '';
    const declared = pooledDeclaration(url, this.settings.pooled);
    if (declared) throw pooledUrl(url, declared);

    const knex = this.entityManager.getConnection().getKnex();
    const session = await MigrationSession.open(knex).catch((error: unknown) => {
      throw new TransientError(`Could not connect to migrate ${redactUrl(url)}: ${messageOf(error)}.`, error);
    });
    let released = false;
    try {
      const evidence = await probeForPooler(session, knex, this.entityManager.config.get('pool')?.max ?? 10);
      if (evidence) throw pooledUrl(url, `the connection behaves like a transaction-mode pooler (${evidence})`);
      await this.acquireLock(session);
      try {
        return await this.runLocked(session, direction, selection);
      } finally {
        const rows = await session.query<{ released: boolean }>('select pg_catalog.pg_advisory_unlock($1::int8) as released', [MIGRATION_LOCK_KEY]).catch(() => []);
        released = rows[0]?.released === true;
      }
    } catch (error) {
      throw asVaultDbError(error);
    } finally {
      await session.close(released);
    }
  }

  private async acquireLock(session: MigrationSession): Promise<void> {
    const timeout = this.settings.lockTimeoutMs;
    try {
      await session.transaction(async (trx) => {
        await setLockTimeout(trx, timeout);
        // A session-level lock: it outlives this transaction and is held until unlocked or the session ends.
        await MigrationSession.run(trx, 'select pg_catalog.pg_advisory_lock(?::int8)', [MIGRATION_LOCK_KEY]);
      });
    } catch (error) {
      if (!isLockTimeout(error)) throw error;
      throw new TransientError(
        `Another process has held the migration lock for more than ${timeout} ms (a migration run still going, or hung); ` +
          `retry later. It is the session in pg_locks with locktype 'advisory' and objid ${BigInt(MIGRATION_LOCK_KEY) & 0xffffffffn}.`,
        error,
      );
    }
    const [held] = await session.query<{ held: boolean }>(`select ${heldByThisBackend('$1')} as held`, [MIGRATION_LOCK_KEY]);
    if (!held?.held) throw new MigrationRefusedError('pooled_url', 'The migration lock taken a moment ago is not held by this session: the URL goes through a transaction-mode pooler. Migrate through a direct connection (DIRECT_URL).');
  }

  private async runLocked(session: MigrationSession, direction: 'up' | 'down', selection: Selection): Promise<MigrationRunReport> {
    const log = this.settings.log;
    const known = await this.listMigrations();
    // A journal of another name than MikroORM's default adopts vault-db's rows from it once.
    const legacy = this.journal.location.table === LEGACY_JOURNAL.table && this.journal.location.schema === LEGACY_JOURNAL.schema
      ? undefined
      : { location: LEGACY_JOURNAL, names: known.map((m) => m.name) };
    await this.withLockRetries('creating the migration journal', [], () =>
      session.transaction(async (trx) => {
        await setLockTimeout(trx, this.settings.ddlLockTimeoutMs);
        await assertLockHeld(trx, 'the migration journal');
        await this.journal.ensure(trx, legacy);
      }),
    );
    const rows = await this.journal.read(session);
    const byName = new Map(known.map((m) => [m.name, m]));
    const report: MigrationRunReport = { applied: [], reverted: [], previouslyApplied: rows.map((r) => r.name), unknownApplied: [], checksumsRecorded: [] };

    const unknown = rows.filter((r) => !byName.has(r.name)).map((r) => r.name);
    if (unknown.length > 0) {
      const what = `The database lists ${unknown.length} applied migration(s) this code doesn't have: ${unknown.join(', ')} (it is ahead of the code: a newer release migrated it)`;
      if (this.settings.onUnknownMigrations === 'refuse') {
        throw new MigrationRefusedError(
          'unknown_applied',
          `${what}. No migration was applied or reverted. Deploy the release that has them, or, if this code is known to work with that schema, pass onUnknownMigrations: 'warn' (VAULT_DB_UNKNOWN_MIGRATIONS=warn for the CLI).`,
          unknown,
        );
      }
      log(`warning: ${what}; going on because onUnknownMigrations is 'warn'.`);
      report.unknownApplied = unknown;
    }

    const fingerprints = await this.verifyChecksums(session, rows, byName, report);
    const applied = new Set(rows.map((r) => r.name));
    if (direction === 'up') {
      const pending = known.filter((m) => !applied.has(m.name));
      for (const migration of selectPending(pending, selection)) {
        const print = fingerprints.get(migration.name) ?? (await fingerprint(await migration.create()));
        await this.apply(session, migration, print, report);
        report.applied.push(migration.name);
        log(`migrated ${migration.name}`);
      }
    } else {
      for (const name of selectApplied(rows.map((r) => r.name), selection)) {
        const migration = byName.get(name);
        if (!migration) throw new MigrationRefusedError('invalid_request', `Can't revert ${name}: this code doesn't have it.`, [name]);
        await this.revert(session, migration, report);
        report.reverted.push(name);
        log(`reverted ${name}`);
      }
    }
    return report;
  }

  /** Compares each applied migration's recorded checksum with its code; fills in missing ones. */
  private async verifyChecksums(
    session: MigrationSession,
    rows: JournalRow[],
    byName: Map<string, KnownMigration>,
    report: MigrationRunReport,
  ): Promise<Map<string, MigrationFingerprint>> {
    const prints = new Map<string, MigrationFingerprint>();
    const changed: string[] = [];
    const missing = new Map<string, string>();
    for (const row of rows) {
      const migration = byName.get(row.name);
      if (!migration) continue;
      const print = await fingerprint(await migration.create());
      prints.set(row.name, print);
      if (row.checksum === null) missing.set(row.name, print.checksum);
      else if (row.checksum !== print.checksum) changed.push(`${row.name} (recorded ${row.checksum.slice(0, 12)}…, now ${print.checksum.slice(0, 12)}…)`);
    }
    if (changed.length > 0) {
      throw new MigrationRefusedError(
        'checksum_mismatch',
        `Applied migration(s) changed since they were applied: ${changed.join(', ')}. No migration was applied or reverted. ` +
          `Never edit an applied migration: restore it and add a new one. If the change is deliberate and the schema matches ` +
          `(npm run schema:validate), clear the recorded checksum (update ${this.journal.table} set checksum = null where name = '<name>') and it is recorded again.`,
        changed.map((c) => c.split(' ')[0] ?? c),
      );
    }
    if (missing.size > 0) {
      await this.withLockRetries('recording checksums', [], () =>
        session.transaction(async (trx) => {
          await setLockTimeout(trx, this.settings.ddlLockTimeoutMs);
          await assertLockHeld(trx, 'recording checksums');
          await this.journal.backfill(trx, missing);
        }),
      );
      report.checksumsRecorded = [...missing.keys()];
      this.settings.log(`recorded the checksums of ${missing.size} migration(s) applied before checksums existed`);
    }
    return prints;
  }

  /** Applies one migration and records it, in one transaction unless it is non-transactional. */
  private async apply(session: MigrationSession, known: KnownMigration, print: MigrationFingerprint, report: MigrationRunReport): Promise<void> {
    if (!print.transactional) {
      await this.runOutsideTransaction(session, known, 'up');
      await this.withLockRetries(`recording ${known.name}`, report.applied, () =>
        session.transaction(async (trx) => {
          await setLockTimeout(trx, this.settings.ddlLockTimeoutMs);
          await this.journal.record(trx, known.name, print.checksum);
        }),
      );
      return;
    }
    await this.withLockRetries(known.name, report.applied, () =>
      session.transaction(async (trx) => {
        await setLockTimeout(trx, this.settings.ddlLockTimeoutMs);
        await assertLockHeld(trx, known.name);
        await this.runMigrationInTransaction(trx, known, 'up');
        await this.journal.record(trx, known.name, print.checksum);
      }),
    ).catch((error: unknown) => {
      throw transactionFailed(known.name, 'up', error);
    });
  }

  /** Reverts one migration and removes it from the journal, like {@link apply}. */
  private async revert(session: MigrationSession, known: KnownMigration, report: MigrationRunReport): Promise<void> {
    const migration = await known.create();
    if (!migration.isTransactional()) {
      await this.runOutsideTransaction(session, known, 'down');
      await this.withLockRetries(`unrecording ${known.name}`, report.reverted, () =>
        session.transaction(async (trx) => {
          await setLockTimeout(trx, this.settings.ddlLockTimeoutMs);
          await this.journal.unrecord(trx, known.name);
        }),
      );
      return;
    }
    await this.withLockRetries(known.name, report.reverted, () =>
      session.transaction(async (trx) => {
        await setLockTimeout(trx, this.settings.ddlLockTimeoutMs);
        await assertLockHeld(trx, known.name);
        await this.runMigrationInTransaction(trx, known, 'down');
        await this.journal.unrecord(trx, known.name);
      }),
    ).catch((error: unknown) => {
      throw transactionFailed(known.name, 'down', error);
    });
  }

  /** Runs a migration's statements in `trx`; its `execute()` and entity manager use `trx` too. */
  private async runMigrationInTransaction(trx: SessionTransaction, known: KnownMigration, method: 'up' | 'down'): Promise<void> {
    const migration = await known.create();
    migration.reset();
    migration.setTransactionContext(trx);
    await migration[method]();
    const driver = this.entityManager.getDriver();
    const queries = migration.getQueries();
    for (const [i, sql] of queries.entries()) {
      try {
        await driver.execute(sql as string, [], 'all', trx);
      } catch (error) {
        throw statementFailed(known.name, method, i, queries.length, sql, error, true);
      }
    }
  }

  /**
   * Runs a non-transactional migration statement by statement on the session, each committing by
   * itself (what `CREATE INDEX CONCURRENTLY` needs). Its `execute()` runs on the session too.
   */
  private async runOutsideTransaction(session: MigrationSession, known: KnownMigration, method: 'up' | 'down'): Promise<void> {
    const [held] = await session.query<{ held: boolean }>(`select ${heldByThisBackend('$1')} as held`, [MIGRATION_LOCK_KEY]);
    if (!held?.held) {
      throw new MigrationRefusedError('lock_not_held', `The session running ${known.name} does not hold the migration lock; migrate through a direct connection (DIRECT_URL).`, [known.name]);
    }
    const migration = await known.create();
    migration.reset();
    // MikroORM's own execute() inlines `?` values and `??` identifiers with the platform's quoting
    // (formatQuery) before sending; node-pg's placeholders are $1, so the text is formatted the same way here.
    const platform = this.entityManager.getPlatform();
    migration.execute = async (sql, params) => session.query(platform.formatQuery(textOf(sql), params ?? []));
    try {
      await migration[method]();
    } catch (error) {
      throw migrationCodeFailed(known.name, method, error);
    }
    const queries = migration.getQueries();
    for (const [i, sql] of queries.entries()) {
      try {
        await session.query(textOf(sql));
      } catch (error) {
        throw statementFailed(known.name, method, i, queries.length, sql, error, false);
      }
    }
  }

  /** Retries `work` while it fails on a lock wait over `ddlLockTimeoutMs`, pausing longer each time. */
  private async withLockRetries<T>(what: string, done: readonly string[], work: () => Promise<T>): Promise<T> {
    const { ddlLockAttempts: attempts, ddlLockTimeoutMs: timeout, ddlRetryDelayMs: base } = this.settings;
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (!isLockTimeout(error)) throw error;
        if (attempt >= attempts) throw lockWaitsExhausted(what, timeout, attempts, done, error);
        const delay = lockRetryDelayMs(base, attempt);
        this.settings.log(lockRetryLine(what, timeout, delay, attempt, attempts));
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Every migration this code has, in the order they apply (by name). */
  private async listMigrations(): Promise<KnownMigration[]> {
    // MikroORM keeps its Umzug private; its `migrations()` resolver is the discovery we want
    // (the folder glob or `migrationsList`), with resolve()/initialize() below adding `create`.
    const umzug = (this as unknown as { umzug: { migrations(ctx?: unknown): Promise<readonly LoadableMigration[]> } }).umzug;
    const found = await umzug.migrations({});
    return found.map((m) => {
      const create = m.create;
      if (!create) throw new Error(`Migration ${m.name} can't be loaded by VaultDbMigrator`);
      return { name: m.name, path: m.path, create };
    });
  }

  protected override resolve(params: MigrationParams): RunnableMigration {
    const runnable = super.resolve(params) as LoadableMigration;
    runnable.create = async () => {
      const module = (await Utils.dynamicImport(params.path as string)) as Record<string, unknown>;
      // The same rule as MikroORM's: the module's first exported class is the migration.
      const MigrationClass = Object.values(module).find((value) => typeof value === 'function') as Constructor<Migration> | undefined;
      if (!MigrationClass) throw new Error(`${params.path} exports no migration class`);
      return this.instantiate(MigrationClass);
    };
    return runnable;
  }

  protected override initialize(MigrationClass: Constructor<Migration>, name: string): RunnableMigration {
    const runnable = super.initialize(MigrationClass, name) as LoadableMigration;
    runnable.create = async () => this.instantiate(MigrationClass);
    return runnable;
  }

  private instantiate(MigrationClass: Constructor<Migration>): Migration {
    return new MigrationClass(this.entityManager.getDriver(), this.entityManager.config);
  }

  private parseSelection(direction: 'up' | 'down', options?: string | string[] | MigrateOptions): Selection {
    if (options === undefined) return {};
    if (typeof options === 'string' || Array.isArray(options)) return { only: [options].flat().map((n) => this.normalizeName(n)) };
    if (options.transaction) {
      throw new MigrationRefusedError('invalid_request', 'VaultDbMigrator runs each migration in a transaction of its own on its locked session; it can\'t join a caller\'s transaction.');
    }
    if (direction === 'down' && options.from !== undefined) throw new MigrationRefusedError('invalid_request', 'down() takes `to` or `migrations`, not `from`.');
    return {
      only: options.migrations?.map((n) => this.normalizeName(n)),
      from: options.from === undefined || options.from === 0 ? undefined : this.normalizeName(String(options.from)),
      to: options.to === undefined ? undefined : options.to === 0 || options.to === '0' ? 0 : this.normalizeName(String(options.to)),
    };
  }

  /** `Migration20261127113603`, `Migration20261127113603.ts` and `20261127113603` name the same migration. */
  private normalizeName(name: string): string {
    const bare = name.replace(/\.[jt]s$/, '');
    const fileName = this.entityManager.config.get('migrations').fileName;
    return /^\d{14}$/.test(bare) ? (fileName ? fileName(bare) : `Migration${bare}`) : bare;
  }
}

/** Which migrations a run touches: `only` these, `from` one on, `to` one (0: all the way down). */
interface Selection {
  only?: string[];
  from?: string;
  to?: string | 0;
}

function selectPending(pending: KnownMigration[], selection: Selection): KnownMigration[] {
  const names = pending.map((m) => m.name);
  for (const name of [...(selection.only ?? []), selection.from, selection.to].filter((n): n is string => typeof n === 'string')) {
    if (!names.includes(name)) throw new MigrationRefusedError('invalid_request', `${name} is not a pending migration (pending: ${names.join(', ') || 'none'}).`, [name]);
  }
  let list = pending;
  if (selection.only) list = list.filter((m) => selection.only?.includes(m.name));
  if (selection.from) list = list.slice(list.findIndex((m) => m.name === selection.from));
  if (typeof selection.to === 'string') list = list.slice(0, list.findIndex((m) => m.name === selection.to) + 1);
  return list;
}

function selectApplied(applied: string[], selection: Selection): string[] {
  const reversed = [...applied].reverse();
  for (const name of [...(selection.only ?? []), selection.to].filter((n): n is string => typeof n === 'string')) {
    if (!applied.includes(name)) throw new MigrationRefusedError('invalid_request', `${name} is not an applied migration.`, [name]);
  }
  if (selection.only) return reversed.filter((name) => selection.only?.includes(name));
  if (selection.to === 0) return reversed;
  if (typeof selection.to === 'string') return reversed.slice(0, reversed.indexOf(selection.to) + 1);
  return reversed.slice(0, 1);
}

/** Sets `lock_timeout` for the rest of `trx` only (never for the session). */
async function setLockTimeout(trx: SessionTransaction, ms: number): Promise<void> {
  await MigrationSession.run(trx, `select pg_catalog.set_config('lock_timeout', ?, true)`, [`${ms}ms`]);
}

function pooledUrl(url: string, why: string): MigrationRefusedError {
  return new MigrationRefusedError(
    'pooled_url',
    `Refusing to migrate through ${redactUrl(url)}: ${why}. A transaction-mode pooler can't hold the migration lock; set DIRECT_URL to the direct (non-pooled) connection string.`,
  );
}

/** `schema.table` or `table` (in `defaultSchema`). */
function splitTableName(name: string, defaultSchema: string): [string, string] {
  const parts = name.split('.');
  return parts.length > 1 ? [parts[0] ?? defaultSchema, parts[1] ?? name] : [defaultSchema, name];
}
