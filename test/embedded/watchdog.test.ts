/**
 * The watchdog's loop (src/embedded/watchdog.ts) run in this process, on real processes: `sleep`
 * stands in for the postmaster (SIGINT ends it, as it ends PostgreSQL), as in
 * stop-protocol.test.ts. sharing.test.ts shows the real watchdog process reaping a real server
 * after its users were killed; this file pins each of the loop's decisions, which that process
 * (started with nothing but PATH in its environment) can't report on.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { takeLease } from '../../src/embedded/leases.js';
import { processOf, type ProcessId } from '../../src/embedded/process-identity.js';
import type { StopMarker } from '../../src/embedded/shutdown.js';
import { parseWatchdogArgs, watch, type WatchdogArgs } from '../../src/embedded/watchdog.js';
import { running, scratchFolder } from './support.js';

let scratch: Awaited<ReturnType<typeof scratchFolder>>;
const children: ChildProcess[] = [];

beforeAll(async () => {
  scratch = await scratchFolder();
});

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

afterAll(async () => {
  await scratch.remove();
});

/** A stand-in postmaster (or user): `sleep`, which SIGINT ends; `slowToStop` ignores SIGINT, like a server still shutting down. */
function aProcess(slowToStop = false): { id: ProcessId; child: ChildProcess } {
  const child = slowToStop ? spawn('sh', ['-c', 'trap "" INT; exec sleep 60'], { stdio: 'ignore' }) : spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(child);
  return { id: processOf(child.pid!), child };
}

/** A process that has ended, for a lease nobody holds any more. */
async function anEndedProcess(): Promise<ProcessId> {
  const { id, child } = aProcess();
  const ended = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await ended;
  return id;
}

/** Fresh watchdog arguments for `postmaster`, in a meta folder of their own. */
async function argsFor(postmaster: ProcessId): Promise<WatchdogArgs> {
  const dir = path.join(scratch.path, `meta-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir);
  return { leasesDir: path.join(dir, 'users'), stopMarker: path.join(dir, 'stopping'), watchdogFile: path.join(dir, 'watchdog'), postmaster };
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
    const postmaster = aProcess(true);
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
    expect(() => parseWatchdogArgs(undefined)).toThrow(SyntaxError);
    for (const key of ['leasesDir', 'stopMarker', 'watchdogFile', 'postmaster'] as const) {
      const { [key]: _left, ...rest } = valid;
      expect(() => parseWatchdogArgs(JSON.stringify(rest)), key).toThrow(new RegExp(key));
    }
    expect(() => parseWatchdogArgs(JSON.stringify({ ...valid, postmaster: { pid: 4.2, startTime: null } }))).toThrow(/pid/);
    expect(() => parseWatchdogArgs(JSON.stringify({ ...valid, postmaster: { pid: 42 } }))).toThrow(/startTime/);
  });
});
