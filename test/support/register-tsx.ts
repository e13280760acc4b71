/**
 * Registers tsx in a vitest worker thread, for Stryker's runs (vitest.stryker.config.ts): the
 * threads pool ignores `execArgv`, and the migrator imports `.ts` migrations with Node's own
 * `import()`. Once per thread; the main thread and forked workers already have it.
 */
import { isMainThread } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

const flag = Symbol.for('vault-db.tsx-registered');
const registry = globalThis as { [flag]?: boolean };
if (!isMainThread && !registry[flag]) {
  register();
  registry[flag] = true;
}
