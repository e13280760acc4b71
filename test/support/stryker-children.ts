/**
 * Lets a full Stryker run (vitest.stryker.config.ts) reach into the child processes tests start:
 * the `vault-db` and `mikro-orm` commands, the embedded server's user processes, the migration
 * races. Stryker's vitest runner activates a mutant in the test's own worker thread only, and the
 * instrumented code of a child reads it from `__STRYKER_ACTIVE_MUTANT__`, which the runner never
 * sets; nor does a child's coverage reach the runner. Without this file, a mutant that only a
 * child reaches is "no coverage" and one a child would catch survives, whatever the tests check.
 *
 * - Before a test file's own hooks, the active mutant goes into the environment children inherit.
 * - `NODE_OPTIONS` preloads stryker-child-coverage.mjs into every Node child, which writes the
 *   child's coverage to a scratch folder when it exits.
 * - In the initial (coverage) run, after each test that coverage is added to the test's own, so
 *   Stryker runs the test for those mutants; what a child writes after the file's last test (a
 *   server stopped in `afterAll`) goes to that last test, which runs the same `beforeAll`.
 *
 * Vitest runs `after*` hooks in reverse order, so these run before Stryker's own clear the test id.
 */
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll } from 'vitest';

type Counts = Record<string, number>;
interface Coverage {
  static: Counts;
  perTest: Record<string, Counts>;
}
interface StrykerNamespace {
  activeMutant?: string;
  currentTestId?: string;
  mutantCoverage?: Coverage;
}

const ns = ((globalThis as { __stryker__?: StrykerNamespace }).__stryker__ ??= {});

// A scratch folder per test file, in /tmp and open to every user (sticky, like /tmp itself):
// some children run as another user (`nobody`, the embedded server's privacy tests) and can
// neither read the checkout nor write a folder of root's. The preload is copied into it for the
// same reason; a child that can't write its coverage loses it, it never fails.
const folder = mkdtempSync(path.join(tmpdir(), 'vault-db-stryker-children-'));
chmodSync(folder, 0o1777);
const preload = path.join(folder, 'preload.mjs');
copyFileSync(fileURLToPath(new URL('./stryker-child-coverage.mjs', import.meta.url)), preload);
chmodSync(preload, 0o644);
process.env.VAULT_DB_STRYKER_CHILD_COVERAGE = folder;
// The worker's environment outlives this file, so its own NODE_OPTIONS is kept aside once and the
// preload of this file's folder put after it.
process.env.VAULT_DB_STRYKER_NODE_OPTIONS ??= process.env.NODE_OPTIONS ?? '';
process.env.NODE_OPTIONS = `${process.env.VAULT_DB_STRYKER_NODE_OPTIONS} --import ${preload}`.trim();

let lastTestId: string | undefined;

/** Adds every coverage file the children wrote since the last call to `testId`'s coverage. */
function collect(testId: string | undefined): void {
  for (const file of readdirSync(folder).filter((name) => name.endsWith('.json'))) {
    const child = JSON.parse(readFileSync(path.join(folder, file), 'utf8')) as Coverage;
    rmSync(path.join(folder, file));
    if (testId === undefined) continue; // a mutant run: coverage no longer matters
    const coverage = (ns.mutantCoverage ??= { static: {}, perTest: {} });
    const own = (coverage.perTest[testId] ??= {});
    for (const counts of [child.static, ...Object.values(child.perTest)]) {
      for (const [mutant, hits] of Object.entries(counts)) own[mutant] = (own[mutant] ?? 0) + hits;
    }
  }
}

beforeAll(() => {
  if (ns.activeMutant === undefined) delete process.env.__STRYKER_ACTIVE_MUTANT__;
  else process.env.__STRYKER_ACTIVE_MUTANT__ = String(ns.activeMutant);
});

afterEach(() => {
  lastTestId = ns.currentTestId;
  collect(lastTestId);
});

afterAll(() => {
  collect(lastTestId);
  rmSync(folder, { recursive: true, force: true });
});
