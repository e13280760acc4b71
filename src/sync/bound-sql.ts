/**
 * Raw SQL with bound parameters, in the transaction of an EntityManager.
 *
 * `em.execute` (MikroORM 6's `AbstractSqlConnection.execute`) inlines every parameter into the SQL
 * text, so a statement carrying megabytes of ciphertext would travel, and be logged, as hex
 * literals. The staged rotation's statements carry up to `maxRotationBytes`; they bind their
 * parameters instead, as the records driver does for the flush's batches.
 *
 * @module
 */
import type { EntityManager } from '@mikro-orm/postgresql';

/** What node-pg returns for a statement. */
export interface BoundResult<R> {
  rows: R[];
  rowCount: number;
}

interface KnexRaw<R> extends PromiseLike<{ rows: R[]; rowCount: number | null }> {
  transacting(ctx: unknown): void;
}

/**
 * Runs `sql` (with `?` placeholders) with `bindings` bound, in `em`'s transaction, and logs it like
 * MikroORM's own statements (the SQL only, never the values).
 */
export async function runBound<R = Record<string, unknown>>(em: EntityManager, sql: string, bindings: readonly unknown[]): Promise<BoundResult<R>> {
  // executeQuery is protected in the typings; it is what logs MikroORM's own queries.
  const connection = em.getConnection() as unknown as {
    getKnex(): { raw<T>(sql: string, bindings: readonly unknown[]): KnexRaw<T> };
    executeQuery<T>(query: string, run: () => Promise<T>): Promise<T>;
  };
  const ctx = em.getTransactionContext();
  const result = await connection.executeQuery(sql, async () => {
    const query = connection.getKnex().raw<R>(sql, bindings);
    if (ctx) query.transacting(ctx);
    return await query;
  });
  return { rows: result.rows, rowCount: result.rowCount ?? 0 };
}
