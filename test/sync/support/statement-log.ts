/**
 * A second ORM on the test file's database that logs every statement it sends, and a service on
 * it, so a test can see exactly which SQL a call sent (BEGIN and COMMIT included).
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig } from '../../../src/config.js';
import { SyncService } from '../../../src/sync/sync-service.js';
import type { SyncServiceOptions } from '../../../src/sync/types.js';
import type { SyncContext } from './sync.js';

/** A logged service; filled in by `beforeAll`. */
export interface LoggedService {
  sync: SyncService;
  /** The SQL of every statement the service sent while `work` ran, in order. */
  statementsOf(work: () => Promise<unknown>): Promise<string[]>;
  /** The same statements as whole log lines, ending with their timing and row count ("[took 1 ms, 3 results]"). */
  logLinesOf(work: () => Promise<unknown>): Promise<string[]>;
}

// The logger colours its lines with ANSI escapes (ESC [ ... m) whatever the options say.
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
// Each line ends with the timing, e.g. " [took 1 ms, 1 result]".
const TIMING = / \[took [^\]]*\]$/;

/** Sets up a logged service on `ctx`'s database (after `setupSyncDatabase`). */
export function setupLoggedService(ctx: SyncContext, options: SyncServiceOptions = {}): LoggedService {
  const lines: string[] = [];
  let orm: MikroORM | undefined;
  const logged = {} as LoggedService;
  beforeAll(async () => {
    orm = await MikroORM.init(createConfig(ctx.db.url, { debug: ['query'], logger: (message: string) => lines.push(message) }));
    logged.sync = new SyncService(orm.em, options);
  });
  afterAll(async () => {
    await orm?.close(true);
  });
  logged.logLinesOf = async (work) => {
    lines.length = 0;
    await work();
    const queries = lines
      .map((l) => l.replace(ANSI, ''))
      .filter((l) => l.startsWith('[query] '))
      .map((l) => l.slice('[query] '.length));
    // A silent logger would make every assertion on the statements trivially true.
    expect(queries.length).toBeGreaterThan(0);
    return queries;
  };
  logged.statementsOf = async (work) => (await logged.logLinesOf(work)).map((l) => l.replace(TIMING, ''));
  return logged;
}

/** The statements that write rows (a data-modifying WITH counts too). */
export function writeStatements(statements: string[]): string[] {
  return statements.filter((s) => /^\s*(insert|update|delete|merge|truncate)\b/i.test(s) || (/^\s*with\b/i.test(s) && /\b(insert|update|delete)\b/i.test(s)));
}
