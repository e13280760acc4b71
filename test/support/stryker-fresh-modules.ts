/**
 * Re-evaluates the project's modules for every test file of a quick Stryker run
 * (vitest.stryker.config.ts).
 *
 * The quick run shares one module cache per worker (`isolate: false`), which is what makes it
 * fast, but a "static" mutant (one in a module-level constant, such as transient.ts's SQLSTATE
 * lists) only takes effect when its module is evaluated again. With the cache kept, whether it was
 * depended on the worker happening to be recycled: the same code scored 98.9% in one run and
 * 90.5% in the next. Clearing the registry here (after Stryker's own setup file has chosen the
 * mutant) makes every test file import src/ afresh. Node's own cache keeps the dependencies
 * (zod, MikroORM), so this costs milliseconds, not a worker start.
 */
import { vi } from 'vitest';

vi.resetModules();
