/**
 * The bench's per-lever figures (`bench/levers.ts`) turn each lever off with a patch against
 * `src/`. A change to the code the patch touches would make the bench fail only when someone runs
 * it; this fails first, in every test run, naming the patch to refresh.
 */
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { LEVER_PATCHES } from '../../bench/levers.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..', '..');

describe('the bench turns each lever off with a patch that still applies', () => {
  test('a patch for each lever, 1 to 6', async () => {
    const patches = (await readdir(LEVER_PATCHES)).filter((f) => f.endsWith('.patch'));
    expect(patches.map((f) => f.split('-')[0]).sort()).toEqual(['1', '2', '3', '4', '5', '6']);
  });

  test.each(['1-second-flush', '2-reference-per-record', '3-ciphertext-copies', '4-tracked-record-scalars', '5-lock-check-select', '6-settings-statement'])('%s.patch applies to src/', async (name) => {
    // --check changes nothing; it fails with the hunk that no longer matches.
    await expect(run('git', ['apply', '--check', path.join(LEVER_PATCHES, `${name}.patch`)], { cwd: ROOT })).resolves.toBeDefined();
  });
});
