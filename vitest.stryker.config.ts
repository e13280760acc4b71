/**
 * The vitest config StrykerJS runs (see stryker.config.mjs), never the project's own runs.
 *
 * Stryker's vitest runner forces the `threads` pool, where the project's `execArgv: ['--import',
 * 'tsx']` never reaches the workers, so the migrator's `import()` of a `.ts` migration fails with
 * ERR_UNKNOWN_FILE_EXTENSION. A setup file registers tsx in each worker thread instead.
 *
 * With `VAULT_DB_MUTATE_QUICK=1` (set by `npm run mutate -- --quick`) only the quick files' unit
 * tests run (QUICK_TESTS), without the global setup: they need no database, which is what makes
 * the quick run fast enough for CI.
 */
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

const quick = process.env.VAULT_DB_MUTATE_QUICK === '1';

/**
 * The tests of the quick run's files (QUICK_FILES in stryker.config.mjs). Not all of test/unit:
 * the rest (metadata, config, entity names, links) checks wiring, not these files' logic, and the
 * metadata test alone takes over a second, which every static mutant of envelope.ts would pay.
 * test/envelope.test.ts predates test/unit but needs no database either.
 * test/unit/transient-driver-errors.test.ts is left out too: it builds errors with node-pg, knex
 * and MikroORM's converter, whose import costs about 0.4 s in each of the new worker threads
 * Vitest starts for every mutant's run. For transient.ts's 131 mutants that was 65 s of a 165 s
 * run; without it, 45 s, and transient.test.ts and transient-rules.test.ts still kill all 131.
 */
const QUICK_TESTS = [
  'test/unit/input.test.ts',
  'test/unit/transient.test.ts',
  'test/unit/transient-rules.test.ts',
  'test/unit/cursor.test.ts',
  'test/unit/judge.test.ts',
  'test/unit/quota.test.ts',
  'test/unit/sync-options.test.ts',
  'test/unit/sync-options-messages.test.ts',
  'test/envelope.test.ts',
  'test/unit/error-chain.test.ts',
];

// Built by hand rather than with mergeConfig, which would append to `include` and `globalSetup`
// instead of replacing them.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: quick ? QUICK_TESTS : base.test?.include,
    globalSetup: quick ? [] : base.test?.globalSetup,
    // The unit tests import no migration, so the quick run skips tsx's start-up in every worker;
    // it re-evaluates src/ for each test file instead, so static mutants always take effect.
    // The full run's tests also start child processes; stryker-children.ts hands them the mutant.
    // The full run's files' setup happens in beforeAll hooks (databases, servers); a mutant that
    // breaks one must count as caught (see stryker-hook-failures.ts).
    setupFiles: quick
      ? ['test/support/stryker-fresh-modules.ts']
      : ['test/support/register-tsx.ts', 'test/support/stryker-children.ts', 'test/support/stryker-hook-failures.ts'],
    isolate: quick ? false : base.test?.isolate,
    // Vitest 4 starts a new worker thread for every mutant's run, and base's `--import tsx` made
    // each one load tsx's loader hooks, which the quick files (compiled by vitest) never need:
    // dropping it took the quick run from 276 s to 232 s on an idle 2-core machine.
    execArgv: quick ? [] : base.test?.execArgv,
  },
});
