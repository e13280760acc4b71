/**
 * The watchdog (src/embedded/watchdog.ts) on stand-in processes (stand-ins.ts): `sleep` plays the
 * postmaster. sharing.test.ts shows the real watchdog process reaping a real server after its
 * users were killed; this file pins each of the loop's decisions by running the loop in this
 * process (the watchdog process, started with nothing but PATH in its environment, can't report
 * on them), and what ensureWatchdog does when it starts that process.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { takeLease } from '../../src/embedded/leases.js';
import { isRunning, type ProcessId } from '../../src/embedded/process-identity.js';
import type { StopMarker } from '../../src/embedded/shutdown.js';
import { ensureWatchdog, parseWatchdogArgs, watch, type WatchdogArgs, type WatchdogPaths } from '../../src/embedded/watchdog.js';
import { useStandIns } from './stand-ins.js';
import { running, waitUntil } from './support.js';

const { aProcess, aSlowToStopProcess, anEndedProcess, freshMeta } = useStandIns();

// Watchdog processes ensureWatchdog started (detached: not our children).
const watchdogs: ProcessId[] = [];

afterEach(() => {
  for (const watchdog of watchdogs.splice(0)) if (isRunning(watchdog)) process.kill(watchdog.pid, 'SIGKILL');
});

/** Fresh watchdog arguments for `postmaster`, in a meta folder of their own. */
async function argsFor(postmaster: ProcessId): Promise<WatchdogArgs> {
  const { leasesDir, stopMarker, watchdogFile } = await freshMeta();
  return { leasesDir, stopMarker, watchdogFile, postmaster };
}

/** Runs the loop, collecting what it says; `settled` tells whether it has returned yet. */
function watching(args: WatchdogArgs): { lines: string[]; done: Promise<void>; settled: () => boolean } {
  const lines: string[] = [];
  let settled = false;
  const done = watch(args, (line) => lines.push(line)).finally(() => {
    settled = true;
  });
  return { lines, done, settled: () => settled };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('watch', () => {
  test('no live lease: it stops the postmaster, waits for it to end, clears the marker and returns', async () => {
    const postmaster = aProcess();
    const args = await argsFor(postmaster.id);
    takeLease(args.leasesDir, await anEndedProcess());
    const run = watching(args);
    await run.done;
    const pid = postmaster.id.pid;
    expect(run.lines).toEqual([`watching postmaster ${pid}`, `no live process uses postmaster ${pid} any more: stopping it`, `postmaster ${pid} stopped`]);
    expect(running(pid)).toBe(false);
    expect(existsSync(args.stopMarker), 'the marker goes once the postmaster has ended').toBe(false);
  });

  test('a live lease keeps the server: it looks again and again, and returns only once the postmaster ends by itself', async () => {
    const postmaster = aProcess();
    const args = await argsFor(postmaster.id);
    takeLease(args.leasesDir, aProcess().id);
    const run = watching(args);
    // Three of its 500 ms looks.
    await sleep(1_300);
    expect(run.settled()).toBe(false);
    expect(running(postmaster.id.pid)).toBe(true);
    expect(existsSync(args.stopMarker), 'a stopper that backs off leaves no marker').toBe(false);
    postmaster.child.kill('SIGKILL');
    await run.done;
    expect(run.lines).toEqual([`watching postmaster ${postmaster.id.pid}`, `postmaster ${postmaster.id.pid} has ended`]);
  });

  test('once the lease is released it stops the postmaster at its next look', async () => {
    const postmaster = aProcess();
    const args = await argsFor(postmaster.id);
    const user = aProcess();
    takeLease(args.leasesDir, user.id);
    const run = watching(args);
    await sleep(600);
    expect(run.settled()).toBe(false);
    user.child.kill('SIGKILL');
    await run.done;
    expect(run.lines.at(-1)).toBe(`postmaster ${postmaster.id.pid} stopped`);
    expect(running(postmaster.id.pid)).toBe(false);
  });

  test('a postmaster slow to stop is waited for: it returns only after the postmaster has ended', async () => {
    const postmaster = await aSlowToStopProcess();
    const args = await argsFor(postmaster.id);
    const run = watching(args);
    await sleep(400);
    expect(run.lines).toContain(`no live process uses postmaster ${postmaster.id.pid} any more: stopping it`);
    expect(run.settled(), 'still waiting for the postmaster').toBe(false);
    expect(JSON.parse(await readFile(args.stopMarker, 'utf8')), 'the decided stop stays marked meanwhile').toMatchObject({ phase: 'stopping', postmaster: postmaster.id });
    postmaster.child.kill('SIGKILL');
    await run.done;
    expect(run.lines.at(-1)).toBe(`postmaster ${postmaster.id.pid} stopped`);
    expect(existsSync(args.stopMarker)).toBe(false);
  });

  test('another stopper at work: it leaves the stop to it, and clears that stopper\'s marker once the postmaster has ended', async () => {
    const postmaster = aProcess();
    const args = await argsFor(postmaster.id);
    const marker: StopMarker = { phase: 'deciding', stopper: aProcess().id, postmaster: postmaster.id };
    await writeFile(args.stopMarker, JSON.stringify(marker));
    const run = watching(args);
    await sleep(600);
    expect(run.settled()).toBe(false);
    expect(running(postmaster.id.pid), 'the other stopper decides, not the watchdog').toBe(true);
    postmaster.child.kill('SIGKILL');
    await run.done;
    expect(run.lines.at(-1)).toBe(`postmaster ${postmaster.id.pid} has ended`);
    expect(existsSync(args.stopMarker)).toBe(false);
  });

  test('a postmaster already gone: it returns at once and leaves a marker about another server alone', async () => {
    const gone = await anEndedProcess();
    const args = await argsFor(gone);
    const other: StopMarker = { phase: 'stopping', stopper: aProcess().id, postmaster: aProcess().id };
    await writeFile(args.stopMarker, JSON.stringify(other));
    const run = watching(args);
    await run.done;
    expect(run.lines).toEqual([`watching postmaster ${gone.pid}`, `postmaster ${gone.pid} has ended`]);
    expect(JSON.parse(await readFile(args.stopMarker, 'utf8'))).toEqual(other);
  });
});

describe('parseWatchdogArgs', () => {
  const valid: WatchdogArgs = { leasesDir: '/d/users', stopMarker: '/d/stopping', watchdogFile: '/d/watchdog', postmaster: { pid: 42, startTime: '123' } };

  test('reads back what ensureWatchdog writes, a postmaster without a start time included', () => {
    expect(parseWatchdogArgs(JSON.stringify(valid))).toEqual(valid);
    const noStart = { ...valid, postmaster: { pid: 42, startTime: null } };
    expect(parseWatchdogArgs(JSON.stringify(noStart))).toEqual(noStart);
  });

  test('refuses a missing argument, and one with a field missing or of the wrong type', () => {
    expect(() => parseWatchdogArgs(undefined)).toThrow('the watchdog takes its arguments as one JSON string, and got none');
    expect(() => parseWatchdogArgs('{"leasesDir":')).toThrow(SyntaxError);
    for (const key of ['leasesDir', 'stopMarker', 'watchdogFile', 'postmaster'] as const) {
      const { [key]: _left, ...rest } = valid;
      expect(() => parseWatchdogArgs(JSON.stringify(rest)), key).toThrow(new RegExp(key));
    }
    expect(() => parseWatchdogArgs(JSON.stringify({ ...valid, postmaster: { pid: 4.2, startTime: null } }))).toThrow(/pid/);
    expect(() => parseWatchdogArgs(JSON.stringify({ ...valid, postmaster: { pid: 42 } }))).toThrow(/startTime/);
  });
});

describe('ensureWatchdog', () => {
  async function watchdogFile(paths: WatchdogPaths): Promise<{ watchdog: ProcessId; postmaster: ProcessId }> {
    const recorded = JSON.parse(await readFile(paths.watchdogFile, 'utf8')) as { watchdog: ProcessId; postmaster: ProcessId };
    watchdogs.push(recorded.watchdog);
    return recorded;
  }

  const log = (paths: WatchdogPaths) => readFile(paths.watchdogLogFile, 'utf8').catch(() => '');

  test('starts one watchdog process for a postmaster, which stops it once the last user is gone', async () => {
    const postmaster = aProcess();
    const paths = await freshMeta();
    const user = aProcess();
    takeLease(paths.leasesDir, user.id);
    const openFiles = () => readdirSync('/proc/self/fd').length;
    const before = openFiles();
    ensureWatchdog(paths, postmaster.id);
    expect(openFiles(), 'the log file it hands the watchdog is closed here').toBe(before);
    const first = await watchdogFile(paths);
    expect(first.postmaster).toEqual(postmaster.id);
    expect(isRunning(first.watchdog)).toBe(true);
    expect((await stat(paths.watchdogFile)).mode & 0o777).toBe(0o600);
    await waitUntil(async () => (await log(paths)).includes(`watchdog ${first.watchdog.pid}: watching postmaster ${postmaster.id.pid}`), 'the watchdog process runs its loop');
    expect((await stat(paths.watchdogLogFile)).mode & 0o777).toBe(0o600);

    ensureWatchdog(paths, postmaster.id);
    expect(await watchdogFile(paths), 'one watching is enough').toEqual(first);

    user.child.kill('SIGKILL');
    await waitUntil(() => !running(postmaster.id.pid), 'the watchdog stops the postmaster');
    await waitUntil(() => !isRunning(first.watchdog), 'and ends');
    expect(await log(paths)).toContain(`postmaster ${postmaster.id.pid} stopped`);
  });

  test('a watchdog of another postmaster, or one that has ended, is replaced', async () => {
    const postmaster = aProcess();
    const paths = await freshMeta();
    takeLease(paths.leasesDir, aProcess().id);
    // A live process that watches another (earlier) postmaster of this data dir.
    const stale = { watchdog: aProcess().id, postmaster: aProcess().id };
    await writeFile(paths.watchdogFile, JSON.stringify(stale));
    ensureWatchdog(paths, postmaster.id);
    const replacing = await watchdogFile(paths);
    expect(replacing.postmaster).toEqual(postmaster.id);
    expect(replacing.watchdog.pid).not.toBe(stale.watchdog.pid);

    // This postmaster's watchdog, ended: another is started.
    process.kill(replacing.watchdog.pid, 'SIGKILL');
    await waitUntil(() => !isRunning(replacing.watchdog), 'the watchdog has ended');
    ensureWatchdog(paths, postmaster.id);
    const again = await watchdogFile(paths);
    expect(again.postmaster).toEqual(postmaster.id);
    expect(again.watchdog.pid).not.toBe(replacing.watchdog.pid);
    expect(isRunning(again.watchdog)).toBe(true);
  });
});
