/**
 * Polling with a deadline, for tests that wait on another process or session: a condition that
 * never comes fails the test in seconds, naming what it waited for, instead of holding it to the
 * suite's timeout (or a mutation run's).
 */

/** Waits until `condition` holds, polling; fails naming `what` after `timeoutMs` (generous: the machine is shared). */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
