/**
 * Makes a mutant that breaks a test file's own `beforeAll` count as caught in a full Stryker run
 * (vitest.stryker.config.ts), as it is in `npm test`.
 *
 * When a file-level `beforeAll` fails, Vitest 4.1 marks the file failed and skips its tests.
 * Stryker 9.6.1's vitest runner reads only the tests: it sees them skipped and, since no test
 * failed, reports the mutant as survived, with no test completed. (Its fix for stryker-js#5492
 * looks for the error on `test.suite`, which under Vitest 4.1 is undefined for a file's top-level
 * tests.) The first full run of src/embedded-postgres.ts reported 24 such survivors: emptying
 * `start()` "survived" while `vitest run` failed both files that reach it.
 *
 * So the file's `beforeAll` hooks are wrapped as they are registered: a failure is kept instead of
 * thrown, and every test of the file then fails with it in a `beforeEach`. The hooks run exactly
 * as before; only where their error is reported changes. Nested `describe` hooks are left alone:
 * there the runner does find the failed suite.
 */
import { beforeEach } from 'vitest';
import { getCurrentSuite } from 'vitest/suite';

type Hook = (...args: unknown[]) => unknown;

const file = getCurrentSuite();
const register = file.on.bind(file) as (name: string, ...hooks: Hook[]) => unknown;
let setupFailure: { error: unknown } | undefined;

(file as { on: typeof register }).on = (name, ...hooks) =>
  register(name, ...(name === 'beforeAll' ? hooks.map(keepFailure) : hooks));

function keepFailure(hook: Hook): Hook {
  // Object.assign keeps Vitest's own properties of the hook (its timeout and stack trace keys).
  return Object.assign(async function (this: unknown, ...args: unknown[]) {
    try {
      return await hook.apply(this, args);
    } catch (error) {
      setupFailure ??= { error };
      return undefined;
    }
  }, hook);
}

beforeEach(() => {
  if (setupFailure) throw setupFailure.error;
});
