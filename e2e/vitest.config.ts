import { defineConfig } from 'vitest/config';

/** `npm run test:e2e`: the browser tests, apart from `npm test` (they need Chromium and a built page). */
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    execArgv: ['--import', 'tsx'],
    maxWorkers: 1,
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
