/**
 * One database session for a whole migration run: a connection taken out of the ORM's knex pool
 * and held until the run ends. The migration lock, every migration transaction and every
 * statement of a non-transactional migration run on it, so they all share one backend.
 *
 * Settings are only ever transaction-local (`set_config(..., true)`), and unless the run ended
 * cleanly (the lock released, no transaction open) the connection is not handed back to the pool
 * for reuse but closed, so nothing of this session (a lock, a setting) can reach a later caller.
 *
 * @module
 */
import type { Knex } from '@mikro-orm/postgresql';

/** A raw driver connection as knex hands it out (a `pg.Client`). */
interface RawConnection {
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  /** Set on connections the pool must destroy instead of reusing (see createConfig's afterCreate). */
  __knex__disposed?: unknown;
}

/** A transaction on the held session, as knex and MikroORM's `Migration#execute` know it. */
export type SessionTransaction = Knex.Transaction;

/** The held session. */
export class MigrationSession {
  private constructor(
    private readonly knex: Knex,
    private readonly connection: RawConnection,
  ) {}

  /** Takes a connection out of `knex`'s pool for the session. */
  static async open(knex: Knex): Promise<MigrationSession> {
    const connection = (await knex.client.acquireConnection()) as RawConnection;
    return new MigrationSession(knex, connection);
  }

  /** Runs one statement on the session, outside any transaction (autocommit). */
  async query<R extends object = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    const result = await this.connection.query(sql, params);
    return result.rows as R[];
  }

  /**
   * Runs `work` in a transaction on the session, committing when it resolves and rolling back
   * when it throws. The transaction object is a knex transaction bound to this connection, so
   * MikroORM's `Migration#execute` and `getEntityManager()` run on it too.
   */
  async transaction<T>(work: (trx: SessionTransaction) => Promise<T>): Promise<T> {
    const trx = await this.knex.transaction(undefined, { connection: this.connection });
    try {
      const result = await work(trx);
      await trx.commit();
      // knex resolves commit() even when COMMIT fails, and rejects this instead.
      await trx.executionPromise;
      return result;
    } catch (error) {
      await trx.rollback().catch(() => {});
      throw error;
    }
  }

  /** Runs one statement inside `trx` and returns its rows. */
  static async run<R extends object = Record<string, unknown>>(trx: SessionTransaction, sql: string, params: unknown[] = []): Promise<R[]> {
    const result = (await trx.raw(sql, params as Knex.RawBinding[])) as { rows: R[] };
    return result.rows;
  }

  /**
   * Ends the session. With `reusable` false (the lock may still be held, or the connection is
   * broken) the connection goes back to the pool marked disposed, so the pool closes it instead of
   * reusing it, which also releases anything the session still held.
   */
  async close(reusable: boolean): Promise<void> {
    if (!reusable) this.connection.__knex__disposed = 'closed by the vault-db migration runner (its session may hold the migration lock)';
    await this.knex.client.releaseConnection(this.connection);
  }
}
