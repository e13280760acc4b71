/**
 * Counts SQL round trips at the driver: every `pg.Client#query` call, which is what both MikroORM
 * (through knex) and the baseline end up calling, BEGIN and COMMIT included. One `query` call is
 * one round trip: node-pg sends parse, bind and execute of a statement together.
 *
 * @module
 */
import pg from 'pg';

type QueryFn = (...args: unknown[]) => unknown;

/** A switchable counter of the statements sent through `pg` in this process. */
export class QueryCounter {
  private active = false;
  private count = 0;
  private readonly statements: string[] = [];

  /** Wraps `pg.Client.prototype.query` once; counting is off until {@link start}. */
  install(): this {
    const proto = pg.Client.prototype as unknown as { query: QueryFn; __benchCounted?: boolean };
    if (proto.__benchCounted) throw new Error('QueryCounter is already installed');
    const original = proto.query;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the wrapper needs both `this`es
    const counter = this;
    proto.query = function (this: unknown, ...args: unknown[]) {
      if (counter.active) counter.record(args[0]);
      return original.apply(this, args);
    };
    proto.__benchCounted = true;
    return this;
  }

  /** Starts a fresh count. */
  start(): void {
    this.count = 0;
    this.statements.length = 0;
    this.active = true;
  }

  /** Stops counting and returns what was sent since {@link start}. */
  stop(): { count: number; statements: string[] } {
    this.active = false;
    return { count: this.count, statements: [...this.statements] };
  }

  private record(query: unknown): void {
    this.count++;
    const text = typeof query === 'string' ? query : ((query as { text?: unknown } | null)?.text ?? '');
    this.statements.push(summarize(String(text)));
  }
}

/**
 * The first words of a statement, with the literals that knex inlines cut away, so a report can
 * say what each round trip was without printing ciphertext.
 */
export function summarize(sql: string): string {
  const flat = sql
    .replace(/\s+/g, ' ')
    .replace(/'(?:[^']|'')*'/g, '?')
    .trim();
  const cut = flat.search(/ (values|where|from unnest|returning|= case) /i);
  const head = cut > 0 ? flat.slice(0, cut) : flat;
  return head.length > 90 ? `${head.slice(0, 87)}...` : head;
}
