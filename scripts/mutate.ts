/**
 * `npm run mutate [-- --quick] [file or glob ...] [-- other Stryker flags]`: runs StrykerJS with
 * stryker.config.mjs.
 *
 * - `--quick`: the pure-logic files against their own unit tests (no database); what CI runs.
 * - file or glob arguments: mutate only those (passed as Stryker's `--mutate`), e.g.
 *   `npm run mutate -- src/sync/transient.ts 'src/sync/c*.ts'`.
 * - anything else starting with `--` goes to Stryker unchanged (e.g. `--concurrency 1`).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const files: string[] = [];
const passThrough: string[] = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i] as string;
  if (arg === '--quick') continue;
  if (arg.startsWith('--')) {
    passThrough.push(arg);
    // A flag's value follows it, unless it is another flag or given as --flag=value.
    const next = args[i + 1];
    if (!arg.includes('=') && next !== undefined && !next.startsWith('--') && !/\.(ts|js|mjs)$|\*/.test(next)) {
      passThrough.push(next);
      i++;
    }
    continue;
  }
  files.push(arg);
}

const strykerArgs = ['stryker', 'run', 'stryker.config.mjs', ...(files.length > 0 ? ['--mutate', files.join(',')] : []), ...passThrough];
console.log(`mutate: ${quick ? 'quick (pure logic, their unit tests, no database)' : 'full (PostgreSQL)'}${files.length > 0 ? `, files ${files.join(', ')}` : ''}`);
const result = spawnSync('npx', strykerArgs, {
  stdio: 'inherit',
  env: { ...process.env, VAULT_DB_MUTATE_QUICK: quick ? '1' : '0' },
});
killSandboxOrphans();
process.exit(result.status ?? 1);

/**
 * Kills processes still running in one of Stryker's sandboxes. A mutant can make a child process
 * of a test loop for ever (one made `mikro-orm migration:up` spin for 22 minutes after its run);
 * Stryker times the test out and replaces its worker, but the child is not the worker's and lives
 * on, using a core, until someone notices. Linux only (it reads /proc); elsewhere it does nothing.
 */
function killSandboxOrphans(): void {
  const sandboxes = path.resolve('.data', 'stryker-tmp') + path.sep;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
  } catch {
    return;
  }
  const killed: string[] = [];
  for (const pid of pids) {
    try {
      if (!readlinkSync(`/proc/${pid}/cwd`).startsWith(sandboxes)) continue;
      process.kill(Number(pid), 'SIGKILL');
      killed.push(pid);
    } catch {
      // gone already, or not ours to read
    }
  }
  if (killed.length > 0) console.log(`mutate: killed ${killed.length} process(es) left running in Stryker's sandbox: ${killed.join(', ')}`);
}
