import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Each file makes its own database, so files can run in parallel; concurrency tests open
    // their own connections, so keep the worker count small on a 2-core machine.
    pool: 'forks',
    // The migrator imports migration files with Node's own import(), which needs tsx for .ts.
    execArgv: ['--import', 'tsx'],
    maxWorkers: 2,
    // Generous: several tests run the CLI in child processes (tsx start-up, a scratch database), which
    // takes seconds on an idle 2-core machine and much longer on a loaded one.
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
