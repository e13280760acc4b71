/**
 * Preloaded (`NODE_OPTIONS=--import`) into every Node child process of a full Stryker run, by
 * test/support/stryker-children.ts: when the child exits, it writes the mutant coverage its
 * instrumented code recorded to the folder the parent test reads back. Plain JavaScript, so that
 * it loads before (and without) tsx. A child killed with SIGKILL writes nothing; its coverage is
 * lost, never invented.
 */
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const folder = process.env.VAULT_DB_STRYKER_CHILD_COVERAGE;
if (folder) {
  process.on('exit', () => {
    const coverage = globalThis.__stryker__?.mutantCoverage;
    if (!coverage) return;
    try {
      // Written aside, then renamed: the parent may read the folder while this child exits.
      const file = path.join(folder, `${process.pid}.json`);
      writeFileSync(`${file}.partial`, JSON.stringify(coverage));
      renameSync(`${file}.partial`, file);
    } catch {
      // The test file that started this child has ended and removed the folder: nothing reads it.
    }
  });
}
