/**
 * `npm start` as a child process, run the way a person runs it: in a process group of its own, so
 * a signal reaches npm, tsx and the server together as a terminal's Ctrl-C does. Its output is
 * collected and its URL read from the "listening on" line. Shared by CI's smoke check
 * (scripts/start-smoke.ts) and the browser test (e2e/).
 *
 * @module
 */
import { spawn } from 'node:child_process';

/** A running `npm start`. */
export interface NpmStart {
  /** The printed URL, e.g. `http://127.0.0.1:38643`. */
  base: string;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
  /**
   * Sends SIGTERM to the process group and waits until every process holding the output has
   * exited (npm ends by the signal; the server finishes its requests first). Returns the output.
   */
  stop(signal?: NodeJS.Signals): Promise<string>;
}

/**
 * Starts `npm start` with `env` in `cwd` and waits for its URL.
 * @throws Error with the output when it exits first or prints no URL within `timeoutMs`
 */
export async function startNpmStart(env: NodeJS.ProcessEnv, cwd = process.cwd(), timeoutMs = 180_000): Promise<NpmStart> {
  const child = spawn('npm', ['start'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  // 'close' comes once every process holding the output has exited: npm and the server under it.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let stopping: Promise<string> | null = null;
  const stop = (signal: NodeJS.Signals = 'SIGTERM'): Promise<string> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, signal);
      await closed;
      return output;
    })();
    return stopping;
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const base = /listening on (http:\/\/[^\s]+:\d+)/.exec(output)?.[1];
    if (base) return { base, output: () => output, stop };
    if (child.exitCode !== null || Date.now() > deadline) {
      const why = child.exitCode !== null ? `exited with ${child.exitCode}` : `printed no URL in ${timeoutMs / 1000} s`;
      await stop('SIGKILL');
      throw new Error(`npm start ${why} before listening:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
