/**
 * The migration journal: MikroORM's `mikro_orm_migrations` table, with two additions the runner
 * makes (idempotently, under the migration lock): a unique index on `name`, so no migration can
 * be recorded twice, and a `checksum` column (see checksum.ts).
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
  async ensure(trx: SessionTransaction): Promise<void> {
    if (this.location.schema !== 'public') await MigrationSession.run(trx, `create schema if not exists ${quoteIdent(this.location.schema)}`);
    // The very table MikroORM's MigrationStorage.ensureTable() creates (its knex builder's SQL),
    // so journals made by either compare equal. Not through it: it reads the schema list on
    // another pooled connection, outside this transaction and the lock.
    await MigrationSession.run(
      trx,
      `create table if not exists ${this.table} ("id" serial primary key, "name" varchar(255), "executed_at" timestamptz default CURRENT_TIMESTAMP)`,
    );
    await MigrationSession.run(trx, `alter table ${this.table} add column if not exists "checksum" varchar(64)`);
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
