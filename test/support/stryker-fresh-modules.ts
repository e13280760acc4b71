/**
 * Re-evaluates the project's modules for a quick Stryker run's test files when a "static" mutant
 * needs it (vitest.stryker.config.ts).
 *
 * The quick run shares one module cache per worker (`isolate: false`), which is what makes it
 * fast, but a static mutant (one in a module-level constant, such as transient.ts's SQLSTATE
 * lists) only takes effect when its module is evaluated again. With the cache kept, whether it was
 * depended on the worker happening to be recycled: the same code scored 98.9% in one run and
 * 90.5% in the next. Clearing the registry here (after Stryker's own setup file has chosen the
 * mutant) makes each test file import src/ afresh. Node's own cache keeps the dependencies (zod,
 * MikroORM), so this costs milliseconds, not a worker start.
 *
 * A runtime mutant is switched on and off at each call, so the cached modules serve it as they
 * are: the registry is cleared only for a static mutant, and for the run after one, whose cache
 * still holds the modules that mutant evaluated.
 */
import { inject, vi } from 'vitest';

const STATIC_LAST = Symbol.for('vault-db.stryker.static-mutant-evaluated');
const worker = globalThis as { [STATIC_LAST]?: boolean };
const staticMutant = (inject as (key: string) => unknown)('mutantActivation') === 'static';

if (staticMutant || worker[STATIC_LAST] !== false) vi.resetModules();
worker[STATIC_LAST] = staticMutant;
