/**
 * The PostgreSQL driver of vault-db: MikroORM's own, except that the three statements a push's
 * flush sends for `records` bind typed arrays (`unnest`) instead of MikroORM 6's generic SQL.
 *
 * The unit of work is unchanged: MikroORM still computes the change sets, runs the optimistic-lock
 * check before the batched update, increments `version`, and maps the returned values. Only the
 * SQL differs, because the generic forms cost most of a large push (see the README's profile):
 * - the lock check is `where (id = ? and version = ?) or ...` with one branch per row;
 * - the batched update is `set col = case when id = ? then ? ... end`, quadratic in the batch;
 * - every parameter, ciphertext included, is inlined into the SQL text as a literal.
 * Any other entity or statement shape falls through to MikroORM unchanged: `find` takes its fast
 * path only for the lock check's exact call (see `lockCheckPairs`), so ordinary queries through
 * this driver return what MikroORM's own driver returns.
 *
 * A transaction may also opt in to a lock check without a round trip of its own
 * ({@link VaultDbDriver.deferLockChecks}): the lock check's `find` then sends nothing and remembers
 * the expected versions, and the batched UPDATE that follows it carries them as a predicate
 * (`r.version = u.expected`), failing with MikroORM's `OptimisticLockError` when fewer rows match
 * (and the transaction rolls back). The check is the same, made by the statement that writes, so
 * a writer that commits between the two can't slip in: the lost-update window of MikroORM's
 * separate check is closed as well.
 *
 * @module
 */
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { OptimisticLockError, type EntityData, type EntityProperty, type FilterQuery, type FindOptions, type NativeInsertUpdateManyOptions, type QueryResult } from '@mikro-orm/core';
import { VaultRecord } from './entities/vault-record.js';

/** The entity whose batches take the fast path. */
const RECORDS = VaultRecord.name;

interface RawResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
}

/** See the module comment. Set as `driver` by `createConfig`. */
export class VaultDbDriver extends PostgreSqlDriver {
  /**
   * Transactions (their knex contexts) whose lock checks ride on the batched UPDATE, each with the
   * versions its last lock check expected, by record id (null until a lock check ran).
   */
  private readonly deferred = new WeakMap<object, Map<string, number> | null>();

  /**
   * Makes the optimistic-lock checks of `records` batches in the transaction `ctx` part of the
   * batched UPDATE instead of a SELECT of their own (see the module comment), until
   * {@link endDeferredLockChecks}. Without a transaction it does nothing: the check then needs its
   * own statement, as MikroORM sends it.
   */
  deferLockChecks(ctx: unknown): void {
    if (isContext(ctx)) this.deferred.set(ctx, null);
  }

  /** Ends {@link deferLockChecks} for `ctx`. */
  endDeferredLockChecks(ctx: unknown): void {
    if (isContext(ctx)) this.deferred.delete(ctx);
  }

  override async nativeUpdateMany<T extends object>(entityName: string, where: FilterQuery<T>[], data: EntityData<T>[], options: NativeInsertUpdateManyOptions<T> = {}): Promise<QueryResult<T>> {
    const columns = entityName === RECORDS && !options.upsert ? this.columnsOf(entityName, data) : null;
    if (!columns || columns.some((c) => c.prop.primary || c.prop.version)) return super.nativeUpdateMany(entityName, where, data, options);
    const ids = where.map((w) => (typeof w === 'object' && w !== null ? (w as { id: unknown }).id : w));
    const ctx = options.ctx as object | undefined;
    const expected = ctx ? this.deferred.get(ctx) : undefined;
    if (ctx && expected) this.deferred.set(ctx, null);
    // A row sets only the columns its change set changed: `has` says which, per row.
    const bindings: unknown[] = [ids];
    const args = ['?::uuid[]'];
    const names = ['id'];
    let versionCheck = '';
    if (expected) {
      // The deferred lock check: a row whose version moved is not updated, and the count says so.
      bindings.push(ids.map((id) => expected.get(id as string) ?? null));
      args.push('?::int[]');
      names.push('expected');
      versionCheck = ' and (u.expected is null or r."version" = u.expected)';
    }
    const sets = columns.map(({ prop, field, cast }, i) => {
      bindings.push(data.map((row) => prop.name in row), data.map((row) => (row as Record<string, unknown>)[prop.name] ?? null));
      args.push('?::boolean[]', `?::${cast}[]`);
      names.push(`has${i}`, `val${i}`);
      return `"${field}" = case when u.has${i} then u.val${i} else r."${field}" end`;
    });
    const sql =
      `update "records" as r set ${sets.join(', ')}, "version" = r."version" + 1 ` +
      `from unnest(${args.join(', ')}) as u(${names.join(', ')}) where r."id" = u.id${versionCheck} returning r."id", r."version"`;
    const res = await this.bound(sql, bindings, options.ctx);
    if (expected && res.rows.length < ids.length) {
      const updated = new Set(res.rows.map((row) => row.id));
      const stale = ids.find((id) => !updated.has(id));
      // MikroORM's own check names the entity; the id is a uuid, never content.
      throw new OptimisticLockError(`The optimistic lock on entity ${entityName} failed (id ${String(stale)})`);
    }
    return toQueryResult(res);
  }

  override async nativeInsertMany<T extends object>(entityName: string, data: EntityData<T>[], options: NativeInsertUpdateManyOptions<T> = {}, transform?: (sql: string) => string): Promise<QueryResult<T>> {
    const columns = entityName === RECORDS && !transform && !options.upsert ? this.columnsOf(entityName, data) : null;
    const keys = columns?.map((c) => c.prop.name).join();
    if (!columns || !columns.some((c) => c.prop.primary) || data.some((row) => Object.keys(row).join() !== keys)) {
      return super.nativeInsertMany(entityName, data, options, transform);
    }
    const meta = this.metadata.find(entityName);
    // What the database fills in (defaults, the version), as MikroORM's own insert returns it.
    const returning = (meta?.props ?? [])
      .filter((p) => (p.defaultRaw !== undefined || p.default !== undefined || p.version) && !columns.some((c) => c.prop.name === p.name))
      .flatMap((p) => p.fieldNames);
    const fields = columns.map((c) => `"${c.field}"`).join(', ');
    const sql =
      `insert into "records" (${fields}) select ${fields} from unnest(${columns.map((c) => `?::${c.cast}[]`).join(', ')}) as u(${fields}) ` +
      `returning ${['id', ...returning].map((f) => `"${f}"`).join(', ')}`;
    const res = await this.bound(sql, columns.map((c) => data.map((row) => (row as Record<string, unknown>)[c.prop.name] ?? null)), options.ctx);
    // MikroORM maps returned rows to entities by position: put them back in the order sent.
    const byId = new Map(res.rows.map((row) => [row.id, row]));
    const idField = columns.find((c) => c.prop.primary)?.prop.name as string;
    return toQueryResult({ rows: data.map((row) => byId.get((row as Record<string, unknown>)[idField]) ?? {}), rowCount: res.rowCount });
  }

  override async find<T extends object, P extends string = never, F extends string = '*', E extends string = never>(entityName: string, where: FilterQuery<T>, options: FindOptions<T, P, F, E> = {} as FindOptions<T, P, F, E>) {
    const pairs = entityName === RECORDS ? lockCheckPairs(where, options, this.platform.getDefaultSchemaName()) : null;
    if (!pairs) return super.find(entityName, where as never, options);
    const ctx = options.ctx as object | undefined;
    const expected = new Map(pairs.map((p) => [p.id, p.version]));
    if (ctx && this.deferred.has(ctx) && expected.size === pairs.length) {
      // Deferred to the batched UPDATE that follows (see the module comment): every row "matches" here.
      this.deferred.set(ctx, expected);
      return [...expected.keys()].map((id) => ({ id })) as never;
    }
    // Distinct pairs, so each row comes back once, exactly like MikroORM's `where (...) or (...)`.
    const res = await this.bound(
      'select r."id" from "records" as r join (select distinct id, version from unnest(?::uuid[], ?::int[]) as p(id, version)) as u on r."id" = u.id and r."version" = u.version',
      [pairs.map((c) => c.id), pairs.map((c) => c.version)],
      options.ctx,
    );
    return res.rows as never;
  }

  /** The scalar columns a batch writes, with their SQL types; null when any is not a plain column. */
  private columnsOf(entityName: string, data: EntityData<object>[]): { prop: EntityProperty; field: string; cast: string }[] | null {
    const meta = this.metadata.find(entityName);
    const names = [...new Set(data.flatMap((row) => Object.keys(row)))];
    const columns = names.map((name) => {
      const prop = meta?.properties[name as never] as EntityProperty | undefined;
      const field = prop?.fieldNames.length === 1 ? prop.fieldNames[0] : undefined;
      const cast = prop?.columnTypes?.[0];
      return prop && field && cast && /^[a-z ]+$/.test(cast) ? { prop, field, cast } : null;
    });
    return columns.every((c) => c !== null) ? (columns as { prop: EntityProperty; field: string; cast: string }[]) : null;
  }

  /** Runs one statement with bound parameters (MikroORM would inline them), logged like MikroORM's own. */
  private bound(sql: string, bindings: unknown[], ctx: unknown): Promise<RawResult> {
    const connection = this.getConnection() as unknown as {
      getKnex(): { raw(sql: string, bindings: unknown[]): PromiseLike<RawResult> & { transacting(ctx: unknown): void } };
      executeQuery<R>(query: string, run: () => Promise<R>): Promise<R>;
    };
    return this.rethrow(
      connection.executeQuery(sql, async () => {
        const query = connection.getKnex().raw(sql, bindings);
        if (ctx) query.transacting(ctx);
        return await query;
      }),
    );
  }
}

/**
 * The options MikroORM's optimistic-lock check passes to `find` (ChangeSetPersister
 * `checkOptimisticLocks`, 6.6.16): the flush's `ctx`, then `fields`, `schema` (the change sets'
 * schema: PostgreSQL's default, `public`) and `loggerContext` from `prepareOptions`. Any other key
 * (limit, orderBy, lockMode, populate, filters, ...) means another caller, which MikroORM must serve.
 */
const LOCK_CHECK_OPTIONS = new Set(['ctx', 'fields', 'schema', 'loggerContext']);
const MAX_INT4 = 2_147_483_647;

/**
 * The (id, version) pairs when `find` is exactly MikroORM's optimistic-lock check of a batched
 * `records` update: `where` is `{ $or: [{ id, version }, ...] }` with a uuid string and an integer
 * in each branch (no operators, no other keys), and the options are that call's and select only
 * `id`. Anything else gives null, and the query goes to MikroORM unchanged.
 */
function lockCheckPairs(where: unknown, options: object, defaultSchema: string | undefined): { id: string; version: number }[] | null {
  if (!isPlain(where) || Object.keys(where).length !== 1 || !Array.isArray(where.$or) || where.$or.length === 0) return null;
  const opts = options as { fields?: unknown; schema?: unknown };
  if (Object.keys(options).some((key) => !LOCK_CHECK_OPTIONS.has(key))) return null;
  // The statement names the table without a schema, as MikroORM does for the default one.
  if (opts.schema !== undefined && opts.schema !== defaultSchema) return null;
  if (!Array.isArray(opts.fields) || opts.fields.length !== 1 || opts.fields[0] !== 'id') return null;
  const pairs: { id: string; version: number }[] = [];
  for (const branch of where.$or as unknown[]) {
    if (!isPlain(branch) || Object.keys(branch).length !== 2) return null;
    const { id, version } = branch;
    // Outside int4 the cast of the bound array would fail where MikroORM's literal simply matches nothing.
    if (typeof id !== 'string' || typeof version !== 'number' || !Number.isInteger(version) || Math.abs(version) > MAX_INT4) return null;
    pairs.push({ id, version });
  }
  return pairs;
}

/** A transaction context: knex's transaction is a function object. */
function isContext(ctx: unknown): ctx is object {
  return (typeof ctx === 'object' || typeof ctx === 'function') && ctx !== null;
}

function isPlain(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

function toQueryResult<T>(res: RawResult): QueryResult<T> {
  return { affectedRows: res.rowCount ?? 0, insertId: res.rows[0]?.id as never, row: res.rows[0] as never, rows: res.rows as never };
}
