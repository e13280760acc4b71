/**
 * A soak run passes only when it did its minimum work (issue #14, item 12): the quick preset cut
 * to 100 ms fails on its minimum counts, the quick preset itself passes. Both run the real script
 * in a child process, against the test server, as CI runs it.
 */
import { expect, inject, test } from 'vitest';
import { runCli } from './support/cli.js';

/** The child's URLs: the pooled one for the devices, the direct one for setup and faults. */
function serverEnv(): Record<string, string> {
  const direct = inject('serverUrl');
  const pooled = inject('pooledServerUrl');
  return direct === pooled ? { DATABASE_URL: pooled } : { DATABASE_URL: pooled, DIRECT_URL: direct };
}

test('--quick --duration-ms 100 fails on its minimum counts, with no violation to blame', async () => {
  const run = await runCli(process.execPath, ['--import', 'tsx', 'soak/run.ts', '--quick', '--duration-ms', '100'], serverEnv(), 150_000);
  expect(run.stderr).not.toMatch(/the run broke/);
  expect(run.stdout).toMatch(/violations\s+0\b/);
  expect(run.stdout).toMatch(/soak: FAILED: the run did not reach its minimum counts: pushes \d+ of at least 45/);
  expect(run.code).toBe(1);
});

test('--quick passes, and its summary shows the minimums it reached', async () => {
  const run = await runCli(process.execPath, ['--import', 'tsx', 'soak/run.ts', '--quick'], serverEnv(), 170_000);
  expect(run.stdout).toMatch(/minimums\s+pushes \d+ >= 45, pulls \d+ >= 18, faults \d+ >= 20, purges \d+ >= 3, stale wakes \d+ >= 1/);
  expect(run.stdout).not.toMatch(/FAILED/);
  expect(run.code, run.stdout + run.stderr).toBe(0);
});
