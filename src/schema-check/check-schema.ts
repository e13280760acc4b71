/**
 * The schema check behind `npm run schema:validate` and the status of `npm run walkthrough`. Read-only: it
 * writes no file and changes nothing in the database it checks; the only thing it creates is a
 * scratch database on the same server, which it drops again.
 *
 * It answers three questions:
 * 1. Do the entities match the migrations? (MikroORM's diff of the entities against the committed
 *    snapshot, computed without writing a migration or the snapshot.)
 * 2. Does a database built by the migrations match the entities? (MikroORM's
 *    `getUpdateSchemaSQL` on the freshly migrated scratch database.)
 * 3. Given a database to check: does its catalog equal the scratch database's, object by object
 *    (catalog.ts: tables and their persistence, columns, constraints and their validation,
 *    indexes, triggers and their state, functions and their security, policies and row-level
 *    security, grants, ...), and does its journal list the same migrations with the same
 *    checksums? The catalog is read from `pg_catalog` only, so every role gets the same answer.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig } from '../config.js';
import { ConfigurationError } from '../errors.js';
import { runMigrations } from '../migrate.js';
import type { VaultDbMigrator } from '../migrations-runner/vault-db-migrator.js';
import { connectClient, withClient, withDatabase } from '../pg-client.js';
import { addJournal, describeCatalog, readJournal, type CatalogDescription, type JournalEntry, type Queryable } from './catalog.js';
import { compareCatalogs } from './compare.js';
import { databaseIdentity, describeLocation, sameDatabase } from './database-identity.js';

/** What to check, and where the check may create its scratch database. */
export interface SchemaCheckOptions {
  /** The database to compare with a freshly migrated one; omit it to check only the entities and migrations. */
  databaseUrl?: string;
  /**
   * A URL on the server where the scratch database is created, logging in as a role that may
   * create databases (the owner's `DIRECT_URL` on Neon). Its own database is only connected to.
   */
  adminUrl: string;
  /**
   * Another URL of the same database as `databaseUrl` (the owner's `DIRECT_URL`), used to read
   * the migration journal when `databaseUrl`'s role may not. Checked to be the same database.
   */
  journalUrl?: string;
  /**
   * The folder of the committed migration snapshot (`src/migrations` in this repository), for the
   * entities-vs-migrations check. Without it (the published package ships no snapshot) that check
   * compares the entities with the freshly migrated database instead.
   */
  snapshotDir?: string;
}

/** What the check found; every list empty means the schema is as the code expects. */
export interface SchemaCheckReport {
  /** Statements the migrations lack to match the entities (entities vs the migration snapshot). */
  entitiesVsMigrations: string[];
  /** Statements that would make a freshly migrated database match the entities. */
  migratedVsEntities: string[];
  /** Differences of the checked database from a freshly migrated one, one line each; null without `databaseUrl`. */
  catalog: string[] | null;
  /** How many objects (and journal rows) were compared. */
  objectsCompared: number;
}

/** True when the report found nothing. */
export function schemaMatches(report: SchemaCheckReport): boolean {
  return report.entitiesVsMigrations.length === 0 && report.migratedVsEntities.length === 0 && (report.catalog ?? []).length === 0;
}

/**
 * Runs the check.
 *
 * @throws ConfigurationError when the check can't be done: a server unreachable, no right to
 *   create the scratch database, or no right to read the journal (each says what to set)
 */
export async function checkSchema(options: SchemaCheckOptions): Promise<SchemaCheckReport> {
  const scratchName = `vault_db_schema_check_${randomBytes(5).toString('hex')}`;
  const scratchUrl = withDatabase(options.adminUrl, scratchName);
  await createScratch(options.adminUrl, scratchName);
  try {
    await runMigrations({ url: scratchUrl, log: () => {} });
    const report: SchemaCheckReport = { ...(await compareWithEntities(scratchUrl, options.snapshotDir)), catalog: null, objectsCompared: 0 };
    if (options.databaseUrl) {
      const expected = await withClient(scratchUrl, (client) => readCatalog(client, true));
      const actual = await readLiveDescription(options.databaseUrl, options.journalUrl);
      // A journal row without a checksum was applied before checksums existed (the runner fills
      // them in on its next run): it says nothing about the migration having changed.
      for (const [key, attributes] of actual) {
        if (key.startsWith('migration ') && attributes.checksum === null) attributes.checksum = expected.get(key)?.checksum ?? null;
      }
      report.catalog = compareCatalogs(actual, expected);
      report.objectsCompared = expected.size;
    }
    return report;
  } finally {
    await withClient(options.adminUrl, (client) => client.query(`drop database if exists "${scratchName}" with (force)`)).catch(() => {});
  }
}

async function createScratch(adminUrl: string, name: string): Promise<void> {
  try {
    await withClient(adminUrl, (client) => client.query(`create database "${name}"`));
  } catch (error) {
    if ((error as { code?: string }).code === '42501') {
      throw new ConfigurationError(
        `The schema check needs a scratch database to migrate and compare with, and the role of ${describeLocation(adminUrl)} may not create databases; ` +
          `set DIRECT_URL to a URL of the same server whose role has CREATEDB (the owner's direct URL).`,
        { cause: error },
      );
    }
    throw new ConfigurationError(`The schema check could not create its scratch database on ${describeLocation(adminUrl)}: ${(error as Error).message}.`, { cause: error });
  }
}

/** MikroORM's two checks, on the freshly migrated scratch database (owned by the checking role). */
async function compareWithEntities(scratchUrl: string, snapshotDir?: string): Promise<Pick<SchemaCheckReport, 'entitiesVsMigrations' | 'migratedVsEntities'>> {
  const snapshotOptions = snapshotDir ? { migrations: { snapshot: true, path: snapshotDir, pathTs: snapshotDir } } : {};
  const config = createConfig(scratchUrl, { pool: { min: 0, max: 1 }, ...snapshotOptions });
  const orm = await MikroORM.init(config);
  try {
    const drift = await orm.schema.getUpdateSchemaSQL({ wrap: false, safe: false, dropTables: true });
    // Without the snapshot (the published package) there is nothing to compare the entities with
    // but the migrated database, which the drift above already does.
    if (!snapshotDir) return { entitiesVsMigrations: [], migratedVsEntities: statements(drift) };
    const snapshot = (orm.migrator as VaultDbMigrator).readSnapshot();
    if (!snapshot) throw new ConfigurationError(`The migration snapshot ${config.migrations?.snapshotName ?? ''}.json is missing from ${snapshotDir}.`);
    const options = config.migrations ?? {};
    // What `migration:create` would write, computed without writing it (nor the snapshot).
    const diff = await orm.schema.getUpdateSchemaMigrationSQL({ wrap: false, safe: options.safe, dropTables: options.dropTables, fromSchema: snapshot });
    return { entitiesVsMigrations: statements(diff.up), migratedVsEntities: statements(drift) };
  } finally {
    await orm.close(true);
  }
}

function statements(sql: string): string[] {
  return sql.split('\n').map((line) => line.trim()).filter((line) => line !== '');
}

/** The catalog (and the journal, with `withJournal`) of the database `db` is connected to, read in one snapshot. */
export async function readCatalog(db: Queryable, withJournal: boolean): Promise<CatalogDescription> {
  await db.query('begin isolation level repeatable read read only');
  try {
    const description = await describeCatalog(db);
    if (withJournal) addJournal(description, await readJournal(db));
    await db.query('commit');
    return description;
  } catch (error) {
    await db.query('rollback').catch(() => {});
    throw error;
  }
}

/** The live database's description; the journal from `journalUrl` when its own role may not read it. */
async function readLiveDescription(databaseUrl: string, journalUrl: string | undefined): Promise<CatalogDescription> {
  const live = await connectClient(databaseUrl, { applicationName: 'vault-db schema check' });
  try {
    if (await journalReadable(live)) return await readCatalog(live, true);
    const description = await readCatalog(live, false);
    if (!journalUrl) throw journalUnreadable(databaseUrl);
    const owner = await connectClient(journalUrl, { applicationName: 'vault-db schema check' });
    try {
      if (!sameDatabase(await databaseIdentity(live), await databaseIdentity(owner))) {
        throw new ConfigurationError(
          `DIRECT_URL (${describeLocation(journalUrl)}) is not the database being checked (${describeLocation(databaseUrl)}), so its migration journal says nothing about it; point both at the same database.`,
        );
      }
      const entries: JournalEntry[] | null = await readJournal(owner);
      addJournal(description, entries);
      return description;
    } finally {
      await owner.end().catch(() => {});
    }
  } finally {
    await live.end().catch(() => {});
  }
}

/** Whether the connected role may read the journal (true also when there is no journal yet). */
async function journalReadable(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ readable: boolean | null }>(
    `select pg_catalog.has_table_privilege(c.oid, 'SELECT') as readable from pg_catalog.pg_class c
       join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relname = 'vault_db_migrations'`,
  );
  return rows[0]?.readable ?? true;
}

function journalUnreadable(url: string): ConfigurationError {
  let user = 'this role';
  try {
    user = `role "${decodeURIComponent(new URL(url).username)}"`;
  } catch {
    // keep the generic wording
  }
  return new ConfigurationError(
    `The schema check compares the migration journal too, and ${user} may not read public.vault_db_migrations of ${describeLocation(url)}; ` +
      `set DIRECT_URL to the owner's URL of the same database (or grant the role SELECT on it).`,
  );
}
