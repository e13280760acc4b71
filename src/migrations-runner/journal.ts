/**
 * The migration journal: `vault_db_migrations`, a table of vault-db's own (so an app's
 * `mikro_orm_migrations` is never mixed with it) shaped like MikroORM's, with two additions the
 * runner makes (idempotently, under the migration lock): a unique index on `name`, so no
 * migration can be recorded twice, and a `checksum` column (see checksum.ts).
 *
 * Databases migrated before the table existed have vault-db's rows in `mikro_orm_migrations`:
 * when the journal is created, those rows (only vault-db's migrations) move over, in order and
 * with their times and checksums, in the same transaction under the lock; the old table is
 * dropped when that leaves it empty (an app's rows keep it, and a journal that held none of
 * vault-db's rows is never touched).
 *
 * Rows are written and deleted only in the transaction of the migration they describe, and only
 * when that transaction's backend holds the migration lock, so a migration is recorded exactly
 * when its changes commit.
 *
 * @module
 */
import { quoteIdent, type JournalLocation } from '../schema-check/catalog.js';
import { MigrationRefusedError } from './errors.js';
import { heldByThisBackend, MIGRATION_LOCK_KEY } from './lock.js';
import { MigrationSession, type SessionTransaction } from './session.js';

/** One applied migration. */
export interface JournalRow {
  name: string;
  checksum: string | null;
}

/** Where vault-db journaled its migrations before it had a table of its own, and which rows are its. */
export interface LegacyJournal {
  location: JournalLocation;
  /** Names of vault-db's migrations: only these rows move. */
  names: readonly string[];
}

/** MikroORM's default journal, vault-db's until it had {@link Journal} a table of its own. */
export const LEGACY_JOURNAL: JournalLocation = { schema: 'public', table: 'mikro_orm_migrations' };

/** Access to the journal table through the migration session. */
export class Journal {
  readonly table: string;
  private readonly uniqueIndex: string;

  constructor(readonly location: JournalLocation) {
    this.table = `${quoteIdent(location.schema)}.${quoteIdent(location.table)}`;
    this.uniqueIndex = `${location.table}_name_unique`;
  }

  /**
   * Creates the table and adds the unique index and the checksum column, inside `trx`. Safe to
   * repeat, and safe against a concurrent run because the caller holds the migration lock.
   *
   * @throws MigrationRefusedError when the journal already lists a migration twice
   */
  async ensure(trx: SessionTransaction, adopt?: LegacyJournal): Promise<void> {
    if (this.location.schema !== 'public') await MigrationSession.run(trx, `create schema if not exists ${quoteIdent(this.location.schema)}`);
    const [state] = await MigrationSession.run<{ missing: boolean }>(trx, `select to_regclass(?) is null as missing`, [this.table]);
    const moveFrom = state?.missing && adopt ? adopt : undefined;
    // The very table MikroORM's MigrationStorage.ensureTable() creates (its knex builder's SQL),
    // so journals made by either compare equal. Not through it: it reads the schema list on
    // another pooled connection, outside this transaction and the lock.
    await MigrationSession.run(
      trx,
      `create table if not exists ${this.table} ("id" serial primary key, "name" varchar(255), "executed_at" timestamptz default CURRENT_TIMESTAMP)`,
    );
    await MigrationSession.run(trx, `alter table ${this.table} add column if not exists "checksum" varchar(64)`);
    if (moveFrom) await this.moveRows(trx, moveFrom);
    const duplicates = await MigrationSession.run<{ name: string }>(
      trx,
      `select name from ${this.table} group by name having count(*) > 1 order by name`,
    );
    if (duplicates.length > 0) {
      const names = duplicates.map((d) => d.name);
      throw new MigrationRefusedError(
        'journal_duplicates',
        `The migration journal ${this.location.table} lists ${names.join(', ')} more than once (two runs raced before the migration lock existed); ` +
          `delete the later row of each (highest id), check the schema with npm run schema:validate, then migrate again.`,
        names,
      );
    }
    await MigrationSession.run(trx, `create unique index if not exists ${quoteIdent(this.uniqueIndex)} on ${this.table} ("name")`);
  }

  /** Moves `from`'s rows of the known migrations into this (new, empty) journal; see the module. */
  private async moveRows(trx: SessionTransaction, from: LegacyJournal): Promise<void> {
    const legacy = `${quoteIdent(from.location.schema)}.${quoteIdent(from.location.table)}`;
    const [found] = await MigrationSession.run<{ present: boolean; checksum: boolean }>(
      trx,
      `select to_regclass(?) is not null as present,
              exists (select 1 from pg_catalog.pg_attribute where attrelid = to_regclass(?) and attname = 'checksum' and not attisdropped) as checksum`,
      [legacy, legacy],
    );
    if (!found?.present) return;
    const checksum = found.checksum ? '"checksum"' : 'null';
    // As JSON: knex would spread a JS array into a list of parameters.
    const names = JSON.stringify(from.names);
    const moved = await MigrationSession.run(
      trx,
      `insert into ${this.table} ("name", "executed_at", "checksum") select "name", "executed_at", ${checksum} from ${legacy} where "name" in (select pg_catalog.jsonb_array_elements_text(?::jsonb)) order by "id" returning "id"`,
      [names],
    );
    // An app's journal that never held vault-db's rows is the app's, even when empty.
    if (moved.length === 0) return;
    await MigrationSession.run(trx, `delete from ${legacy} where "name" in (select pg_catalog.jsonb_array_elements_text(?::jsonb))`, [names]);
    const [left] = await MigrationSession.run<{ rows: number }>(trx, `select count(*)::int as rows from ${legacy}`);
    if (left?.rows === 0) await MigrationSession.run(trx, `drop table ${legacy}`);
  }

  /** The applied migrations, in the order they were applied. */
  async read(session: MigrationSession): Promise<JournalRow[]> {
    return session.query<JournalRow>(`select name, checksum from ${this.table} order by id`);
  }

  /** Whether the journal table exists yet (reading never creates it). */
  async exists(db: { query(sql: string): Promise<{ present: boolean }[]> }): Promise<boolean> {
    const [row] = await db.query(`select to_regclass('${this.table.replace(/'/g, "''")}') is not null as present`);
    return row?.present === true;
  }

  /**
   * Records `name` as applied, in `trx`, but only if `trx`'s backend holds the migration lock.
   *
   * @throws MigrationRefusedError (`lock_not_held`) otherwise; the caller's transaction then rolls back
   */
  async record(trx: SessionTransaction, name: string, checksum: string): Promise<void> {
    const rows = await MigrationSession.run(
      trx,
      `insert into ${this.table} ("name", "checksum") select ?, ? where ${heldByThisBackend('?')} returning id`,
      [name, checksum, MIGRATION_LOCK_KEY],
    );
    if (rows.length === 0) throw lockNotHeld(name);
  }

  /** Removes `name` from the journal, in `trx`, under the same condition as {@link record}. */
  async unrecord(trx: SessionTransaction, name: string): Promise<void> {
    const [held] = await MigrationSession.run<{ held: boolean }>(trx, `select ${heldByThisBackend('?')} as held`, [MIGRATION_LOCK_KEY]);
    if (!held?.held) throw lockNotHeld(name);
    await MigrationSession.run(trx, `delete from ${this.table} where "name" = ?`, [name]);
  }

  /** Stores checksums for rows that have none (migrations applied before checksums existed). */
  async backfill(trx: SessionTransaction, checksums: ReadonlyMap<string, string>): Promise<void> {
    for (const [name, checksum] of checksums) {
      await MigrationSession.run(trx, `update ${this.table} set "checksum" = ? where "name" = ? and "checksum" is null`, [checksum, name]);
    }
  }
}

/** Checks, inside `trx`, that its backend holds the migration lock. */
export async function assertLockHeld(trx: SessionTransaction, what: string): Promise<void> {
  const [row] = await MigrationSession.run<{ held: boolean }>(trx, `select ${heldByThisBackend('?')} as held`, [MIGRATION_LOCK_KEY]);
  if (!row?.held) throw lockNotHeld(what);
}

function lockNotHeld(what: string): MigrationRefusedError {
  return new MigrationRefusedError(
    'lock_not_held',
    `The transaction of ${what} ran on a database session that does not hold the migration lock, so it was rolled back: ` +
      `the URL goes through a transaction-mode pooler (PgBouncer, a Neon "-pooler" host) or the connection was replaced. ` +
      `Migrate through a direct connection (DIRECT_URL).`,
    [what],
  );
}
