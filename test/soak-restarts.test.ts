/**
 * `soak --restarts` (issue #8): PostgreSQL itself is restarted mid-run. Without `DATABASE_URL` the
 * run restarts a private embedded server of its own and passes with its invariants and minimums;
 * with `DATABASE_URL` and no way to restart that server, it refuses to start rather than restart
 * someone else's. Both run the real script in a child process.
 */
import { expect, inject, test } from 'vitest';
import { runCli } from './support/cli.js';

test('--restarts against DATABASE_URL without --restart-command refuses to run (exit 2), naming the option', async () => {
  const run = await runCli(process.execPath, ['--import', 'tsx', 'soak/run.ts', '--quick', '--restarts'], { DATABASE_URL: inject('pooledServerUrl') }, 60_000);
  expect(run.stderr).toMatch(/with DATABASE_URL, say how to restart that server with --restart-command/);
  expect(run.stdout).not.toMatch(/soak summary/);
  expect(run.code).toBe(2);
});

test('--quick --restarts on a private embedded server: restarts happen, calls in flight end typed, no violation', async () => {
  // No DATABASE_URL: the run starts, restarts and deletes an embedded server of its own.
  const run = await runCli(process.execPath, ['--import', 'tsx', 'soak/run.ts', '--quick', '--restarts'], {}, 170_000);
  expect(run.stdout).toMatch(/on a private embedded PostgreSQL/);
  expect(run.stdout).toMatch(/restarts\s+[2-9]\d* \(server away \d+ to \d+ ms\); \d+ calls in flight: .* 0 other/);
  expect(run.stdout).toMatch(/violations\s+0\b/);
  expect(run.code, run.stdout + run.stderr).toBe(0);
});
