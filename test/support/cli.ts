/** Runs the project's scripts as a user would, in a child process, and reports how they ended. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The project root, so commands behave as when run from a shell there. */
export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** How a command ended. */
export interface CliResult {
  /** The exit code; null when a signal ended the process. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * What a child inherits from the test runner: where programs and files are, and the TLS settings
 * a user's shell holds for libpq and Node (a CA file, a client certificate), so a child reaches a
 * TLS server as the runner does. No URL: tests pass those themselves.
 */
export const INHERITED_ENV = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'PGSSLMODE', 'PGSSLROOTCERT', 'PGSSLCERT', 'PGSSLKEY', 'NODE_EXTRA_CA_CERTS'] as const;

/**
 * What a child also inherits in a full Stryker run, and only there (test/support/stryker-children.ts
 * sets them): the active mutant and the preload that reports the child's coverage, so a mutant a
 * command reaches is tested through it too.
 */
const STRYKER_ENV = ['__STRYKER_ACTIVE_MUTANT__', 'VAULT_DB_STRYKER_CHILD_COVERAGE', 'NODE_OPTIONS'] as const;

/**
 * Runs `command args` in the project root with exactly `env` on top of {@link INHERITED_ENV}
 * (none of the test runner's other variables leak in, so `DIRECT_URL` or `NODE_OPTIONS` can't
 * change the outcome). Never throws on a non-zero exit: the exit code is part of what tests check.
 */
export function runCli(command: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  const base: Record<string, string> = {};
  const stryker = process.env.VAULT_DB_STRYKER_CHILD_COVERAGE !== undefined;
  for (const key of [...INHERITED_ENV, ...(stryker ? STRYKER_ENV : [])]) {
    const value = process.env[key];
    if (value !== undefined) base[key] = value;
  }
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: PROJECT_ROOT, env: { ...base, ...env }, timeout: timeoutMs, maxBuffer: 10 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number' && error.signal == null) {
          reject(error); // the command could not be started at all
          return;
        }
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
      },
    );
  });
}
