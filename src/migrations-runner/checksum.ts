/**
 * Checksums of migrations, so an applied migration that was edited afterwards is noticed.
 *
 * The checksum covers what a migration *does*, not its file: the statements its `up()` and
 * `down()` queue (with `addSql`) or run (with `execute`), in order, and whether it is
 * transactional. The same migration compiled to JavaScript (`dist/`) or run from TypeScript
 * (`src/`) therefore has the same checksum, and comments or formatting of the file don't count.
 * The statements are collected in a dry run: `execute()` is recorded, not sent.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { Migration } from '@mikro-orm/migrations';

/** The statements of one direction of a migration, in order; null when it can't be reverted. */
export type Statements = string[] | null;

/** What a dry run of a migration found. */
export interface MigrationFingerprint {
  up: string[];
  down: Statements;
  transactional: boolean;
  /** sha256 (hex) of the above. */
  checksum: string;
}

/** Text of a statement queued by `addSql` or passed to `execute`: a string or a knex builder. */
function statementText(sql: unknown, params?: unknown[]): string {
  const text = typeof sql === 'string' ? sql : String((sql as { toQuery?: () => string }).toQuery?.() ?? sql);
  return params && params.length > 0 ? `${text} -- params ${JSON.stringify(params)}` : text;
}

/**
 * The statements `method` of `migration` would run, collected without touching the database.
 * `execute()` calls are recorded in place and answer with no rows.
 */
export async function dryRun(migration: Migration, method: 'up' | 'down'): Promise<string[]> {
  migration.reset();
  const recorded: string[] = [];
  const original = migration.execute;
  // Queue executed statements in place, so addSql/execute interleavings keep their order.
  migration.execute = async (sql, params) => {
    migration.addSql(statementText(sql, params));
    return [];
  };
  try {
    await migration[method]();
    for (const sql of migration.getQueries()) recorded.push(statementText(sql));
    return recorded;
  } finally {
    migration.execute = original;
    migration.reset();
  }
}

/** Dry-runs both directions of `migration` and hashes them. */
export async function fingerprint(migration: Migration): Promise<MigrationFingerprint> {
  const up = await dryRun(migration, 'up');
  let down: Statements;
  try {
    down = await dryRun(migration, 'down');
  } catch {
    // MikroORM's default down() throws "This migration cannot be reverted".
    down = null;
  }
  const transactional = migration.isTransactional();
  const checksum = createHash('sha256').update(JSON.stringify({ up, down, transactional })).digest('hex');
  return { up, down, transactional, checksum };
}
