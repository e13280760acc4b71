/**
 * `NonTransactionalMigration`: the base class for migrations that must not block a table with
 * data, because they run statements PostgreSQL refuses inside a transaction
 * (`CREATE INDEX CONCURRENTLY`) or that must commit one by one (add a constraint `NOT VALID`, then
 * `VALIDATE` it without holding the first statement's lock).
 *
 * The runner runs such a migration statement by statement on its locked session, each statement
 * committing by itself, and records it only after the last one. A run killed halfway leaves the
 * first statements done and the migration unrecorded, so the next run executes it again: every
 * statement these helpers queue is safe to run twice, including over the INVALID index a killed
 * `CREATE INDEX CONCURRENTLY` leaves behind.
 *
 * @example
 * ```ts
 * export class Migration20270101000000 extends NonTransactionalMigration {
 *   override async up(): Promise<void> {
 *     this.createIndexConcurrently('idx_records_updated_seq', 'records', '(updated_at, seq)');
 *   }
 *   override async down(): Promise<void> {
 *     this.dropIndexConcurrently('idx_records_updated_seq');
 *   }
 * }
 * ```
 * @module
 */
import { Migration } from '@mikro-orm/migrations';

/** How long the short catalog changes of the helpers may wait for their table lock, in ms. */
const HELPER_LOCK_TIMEOUT_MS = 5_000;

/** Quotes an identifier (as `quote_ident` does for names that need it). */
function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A literal for SQL text. */
function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Base class of migrations that run outside a transaction; see the module. */
export abstract class NonTransactionalMigration extends Migration {
  /** Tells the runner to run the statements one by one, outside any transaction. */
  override isTransactional(): boolean {
    return false;
  }

  /**
   * Queues `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS name ON table definition`, preceded
   * by dropping an INVALID index of that name (the remains of a killed earlier attempt, which
   * `IF NOT EXISTS` would otherwise take for done).
   *
   * @param definition what follows `ON table`: `(col1, col2)`, `USING gin (col)`, `(col) WHERE ...`
   */
  protected createIndexConcurrently(name: string, table: string, definition: string, options: { unique?: boolean; schema?: string } = {}): void {
    const schema = options.schema ?? 'public';
    this.addSql(`do $$
begin
  perform pg_catalog.set_config('lock_timeout', '${HELPER_LOCK_TIMEOUT_MS}ms', true);
  if exists (select 1 from pg_catalog.pg_index i where i.indexrelid = to_regclass(${literal(`${ident(schema)}.${ident(name)}`)}) and not i.indisvalid) then
    execute ${literal(`drop index ${ident(schema)}.${ident(name)}`)};
  end if;
end $$;`);
    this.addSql(`create ${options.unique ? 'unique ' : ''}index concurrently if not exists ${ident(name)} on ${ident(schema)}.${ident(table)} ${definition};`);
  }

  /** Queues `DROP INDEX CONCURRENTLY IF EXISTS name`. */
  protected dropIndexConcurrently(name: string, options: { schema?: string } = {}): void {
    this.addSql(`drop index concurrently if exists ${ident(options.schema ?? 'public')}.${ident(name)};`);
  }

  /**
   * Queues adding a CHECK or FOREIGN KEY constraint `NOT VALID` (a short lock: existing rows are
   * not scanned; new rows are checked from now on), unless a constraint of that name exists.
   * Follow it with {@link validateConstraint}, which scans the rows without blocking writes.
   *
   * @param definition `check (...)` or `foreign key (...) references ...`
   */
  protected addConstraintNotValid(table: string, name: string, definition: string, options: { schema?: string } = {}): void {
    const qualified = `${ident(options.schema ?? 'public')}.${ident(table)}`;
    this.addSql(`do $$
begin
  perform pg_catalog.set_config('lock_timeout', '${HELPER_LOCK_TIMEOUT_MS}ms', true);
  if not exists (select 1 from pg_catalog.pg_constraint c where c.conrelid = to_regclass(${literal(qualified)}) and c.conname = ${literal(name)}) then
    execute ${literal(`alter table ${qualified} add constraint ${ident(name)} ${definition} not valid`)};
  end if;
end $$;`);
  }

  /** Queues `VALIDATE CONSTRAINT` (SHARE UPDATE EXCLUSIVE: reads and writes go on). Safe to repeat. */
  protected validateConstraint(table: string, name: string, options: { schema?: string } = {}): void {
    this.addSql(`alter table ${ident(options.schema ?? 'public')}.${ident(table)} validate constraint ${ident(name)};`);
  }
}
