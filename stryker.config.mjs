// @ts-check
/**
 * StrykerJS configuration for `npm run mutate` (scripts/mutate.ts sets the mode and the files).
 *
 * - Full run (`npm run mutate`, or `npm run mutate -- src/sync/transient.ts`): mutates src/
 *   against the whole suite on PostgreSQL (DATABASE_URL, or the embedded server), static mutants
 *   left out. Eleven database-backed sync, driver, URL and migrate files took 44 minutes on an
 *   idle 2-core machine; all of src/ takes hours.
 * - Quick run (`npm run mutate -- --quick`, VAULT_DB_MUTATE_QUICK=1): mutates the pure-logic files
 *   against their own unit tests (QUICK_TESTS in vitest.stryker.config.ts), which need no
 *   database; CI runs it and breaks below 90%.
 *
 * Reports go to .data/mutation/ (git-ignored).
 */
import process from 'node:process';

const quick = process.env.VAULT_DB_MUTATE_QUICK === '1';

/** The files whose logic needs no database, each covered by a test in test/unit. */
export const QUICK_FILES = [
  'src/sync/input.ts',
  'src/sync/transient.ts',
  'src/sync/cursor.ts',
  'src/sync/judge.ts',
  'src/sync/quota.ts',
  'src/sync/options.ts',
  'src/envelope.ts',
  'src/error-chain.ts',
];

/** Everything that ships: the service, envelope, driver, migrations runner, URL and embedded server. */
const FULL_FILES = ['src/**/*.ts', '!src/migrations/**', '!src/index.ts', '!src/**/types.ts'];

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
const config = {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  // The full run's initial run is the whole suite, not only the tests that import the mutated
  // files: some code runs only in child processes that tests start (the CLI's migrator, the
  // embedded server's user processes), and the tests that reach it import none of it.
  // test/support/stryker-children.ts reports what the children cover, so each mutant still runs
  // only the tests that reach it.
  vitest: { configFile: 'vitest.stryker.config.ts', related: quick },
  coverageAnalysis: 'perTest',
  // A static mutant (in module-level code: SQL text, constants) can't be traced to the tests that
  // reach it, so Stryker runs every related test for it: over the database suite that is about
  // three minutes a mutant, and the first full run was estimated at over 100 hours for 534 of
  // them. The full run leaves them out and says how many it left; the quick run keeps them (there
  // a re-import costs milliseconds, see test/support/stryker-fresh-modules.ts).
  ignoreStatic: !quick,
  mutate: quick ? QUICK_FILES : FULL_FILES,
  // The sandbox copy must not drag in the embedded server's data directory or build output.
  ignorePatterns: ['.data', 'dist', 'coverage', 'temp', 'bench/results', 'reports', '*.log', '*.cpuprofile'],
  tempDirName: '.data/stryker-tmp',
  cleanTempDir: 'always',
  concurrency: 2,
  // Database tests are slow under load; a mutant that makes a test hang is still caught by the
  // timeout, just later. The quick run's static mutants re-run every unit test with a module
  // reload: with 5 s instead of 10 s they all came out as survivors, so it keeps 10 s.
  timeoutMS: quick ? 10_000 : 60_000,
  // The initial run of a full run is every test related to the mutated files; for the migrations
  // runner that is nearly the whole suite, which takes more than Stryker's default 5 minutes.
  dryRunTimeoutMinutes: 45,
  timeoutFactor: 2,
  thresholds: quick ? { high: 95, low: 90, break: 90 } : { high: 95, low: 90, break: null },
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: quick ? '.data/mutation/quick/index.html' : '.data/mutation/full/index.html' },
  jsonReporter: { fileName: quick ? '.data/mutation/quick/mutation.json' : '.data/mutation/full/mutation.json' },
  clearTextReporter: { allowColor: false, reportTests: false, reportMutants: true, reportScoreTable: true },
};

export default config;
