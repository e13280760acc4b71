/**
 * The stop protocol (src/embedded/shutdown.ts) on real processes: `sleep` stands in for the
 * postmaster (SIGINT ends it, as it ends PostgreSQL) and for the users. A stop happens only when
 * no live process holds a lease; a new user that comes after the decision is told to wait.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { liveLeaseHolders, releaseLease, takeLease } from '../../src/embedded/leases.js';
import { processOf, type ProcessId } from '../../src/embedded/process-identity.js';
import { readStopMarker, type ShutdownPaths, stopInProgress, type StopMarker, tryStop } from '../../src/embedded/shutdown.js';
import { running, scratchFolder, waitUntil } from './support.js';

let scratch: Awaited<ReturnType<typeof scratchFolder>>;
let paths: ShutdownPaths;
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

/** A running process (`sleep`), ended by SIGINT like a postmaster; or, `slowToStop`, one that ignores it (a server still shutting down). */
function aProcess(slowToStop = false): ProcessId {
  const child = slowToStop ? spawn('sh', ['-c', 'trap "" INT; exec sleep 60'], { stdio: 'ignore' }) : spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(child);
  return processOf(child.pid!);
}

/** A process that has ended. */
async function anEndedProcess(): Promise<ProcessId> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const id = processOf(child.pid!);
  const ended = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await ended;
  return id;
}

async function freshPaths(): Promise<ShutdownPaths> {
  const dir = path.join(scratch.path, `meta-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir);
  paths = { leasesDir: path.join(dir, 'users'), stopMarker: path.join(dir, 'stopping') };
  return paths;
}

test('a live lease keeps the server: the stopper backs off and removes its marker', async () => {
  const p = await freshPaths();
  const postmaster = aProcess();
  takeLease(p.leasesDir, aProcess());
  expect(tryStop(p, postmaster, await anEndedProcess())).toBe('in_use');
  expect(existsSync(p.stopMarker)).toBe(false);
  expect(running(postmaster.pid)).toBe(true);
});

test('only leases of ended processes: they are pruned and the server is stopped', async () => {
  const p = await freshPaths();
  const postmaster = aProcess();
  takeLease(p.leasesDir, await anEndedProcess());
  takeLease(p.leasesDir, await anEndedProcess());
  expect(tryStop(p, postmaster, processOf(process.pid))).toBe('stopping');
  expect(await readdir(p.leasesDir)).toEqual([]);
  expect(readStopMarker(p)?.phase).toBe('stopping');
  await waitUntil(() => !running(postmaster.pid), 'the postmaster got SIGINT');
});

test('one stopper at a time: a second one leaves it to the first', async () => {
  const p = await freshPaths();
  const postmaster = aProcess();
  await writeFile(p.stopMarker, JSON.stringify({ phase: 'deciding', stopper: aProcess(), postmaster } satisfies StopMarker));
  expect(tryStop(p, postmaster, processOf(process.pid))).toBe('other_stopper');
  expect(running(postmaster.pid)).toBe(true);
});

test('a new user that arrives while a live stopper decides waits', async () => {
  const p = await freshPaths();
  const postmaster = aProcess();
  await writeFile(p.stopMarker, JSON.stringify({ phase: 'deciding', stopper: aProcess(), postmaster } satisfies StopMarker));
  expect(stopInProgress(p)).toBe('wait');
});

test('an undecided marker of a stopper that has ended is dropped, and the server is left alone', async () => {
  const p = await freshPaths();
  const postmaster = aProcess();
  await writeFile(p.stopMarker, JSON.stringify({ phase: 'deciding', stopper: await anEndedProcess(), postmaster } satisfies StopMarker));
  expect(stopInProgress(p)).toBe('proceed');
  expect(existsSync(p.stopMarker)).toBe(false);
  expect(running(postmaster.pid)).toBe(true);
});

test('a decided stop is seen through even when its stopper has ended (it stopped from its exit handler)', async () => {
  const p = await freshPaths();
  const postmaster = aProcess();
  await writeFile(p.stopMarker, JSON.stringify({ phase: 'stopping', stopper: await anEndedProcess(), postmaster } satisfies StopMarker));
  expect(stopInProgress(p), 'the new user waits for the server to go').toBe('wait');
  await waitUntil(() => !running(postmaster.pid), 'the decided stop is completed');
  expect(stopInProgress(p), 'then starts a new one').toBe('proceed');
  expect(existsSync(p.stopMarker)).toBe(false);
});

test('a user whose lease was there when the stopper counted is never stopped under; one who came later waits', async () => {
  const p = await freshPaths();
  const postmaster = aProcess(true);
  const early = aProcess();
  takeLease(p.leasesDir, early);
  expect(tryStop(p, postmaster, await anEndedProcess())).toBe('in_use');
  expect(liveLeaseHolders(p.leasesDir)).toEqual([early]);

  // The early user leaves; the stop is decided; a late user writes its lease and then looks.
  releaseLease(p.leasesDir, early);
  const stopper = aProcess();
  expect(tryStop(p, postmaster, stopper)).toBe('stopping');
  takeLease(p.leasesDir, aProcess());
  expect(stopInProgress(p), 'the server is going down: wait, then start a new one').toBe('wait');
});
