/**
 * ORM settings the bench can try without changing `src/config.ts` (issue 10, lever 4): global
 * MikroORM options that change the unit of work's cost, given on the command line as
 * `--orm=flushMode:commit,populateAfterFlush:false` and passed to every ORM the bench builds
 * (child processes read them from `BENCH_ORM`).
 *
 * @module
 */
import type { Options } from '@mikro-orm/core';

/** The global ORM settings the bench may override. */
export type OrmOverrides = Partial<Pick<Options, 'flushMode' | 'populateAfterFlush'>>;

const ALLOWED: Record<string, (value: string) => unknown> = {
  flushMode: (v) => {
    if (!['auto', 'commit', 'always'].includes(v)) throw new Error(`--orm flushMode must be auto, commit or always, not ${v}`);
    return v;
  },
  populateAfterFlush: (v) => {
    if (v !== 'true' && v !== 'false') throw new Error(`--orm populateAfterFlush must be true or false, not ${v}`);
    return v === 'true';
  },
};

/** The overrides in `spec` (`name:value,...`); an empty object for none. */
export function parseOrmOverrides(spec: string | undefined): OrmOverrides {
  const out: Record<string, unknown> = {};
  for (const item of (spec ?? '').split(',').filter(Boolean)) {
    const [name, value] = item.split(':') as [string, string | undefined];
    const parse = ALLOWED[name];
    if (!parse || value === undefined) throw new Error(`unknown --orm setting "${item}"; known: ${Object.keys(ALLOWED).join(', ')} (as name:value)`);
    out[name] = parse(value);
  }
  return out as OrmOverrides;
}
