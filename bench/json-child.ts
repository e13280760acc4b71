/**
 * Runs a bench script in a child process of its own and returns the JSON line it printed last:
 * how the memory and per-lever scenarios keep one measurement's garbage, JIT state and module
 * copies out of another's.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * `node --expose-gc --import tsx <script> ...args` in `cwd`, with `env` added to this process's
 * environment; resolves with the last line of its output, parsed. Half an hour at most: the
 * longest child (10,000 pushes) takes minutes.
 */
export async function runJsonChild<T>(script: string, args: string[], cwd: string, env: Record<string, string>): Promise<T> {
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', script, ...args], {
    cwd,
    env: { ...process.env, ...env },
    timeout: 1_800_000,
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as T;
}
