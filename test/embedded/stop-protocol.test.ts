/**
 * The stop protocol (src/embedded/shutdown.ts) on real processes: `sleep` stands in for the
 * postmaster (SIGINT ends it, as it ends PostgreSQL) and for the users. A stop happens only when
 * no live process holds a lease; a new user that comes after the decision is told to wait.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { liveLeaseHolders, releaseLease, takeLease } from '../../src/embedded/leases.js';
import { processOf, type ProcessId } from '../../src/embedded/process-identity.js';
import { clearStopMarker, readStopMarker, type ShutdownPaths, stopInProgress, type StopMarker, tryStop } from '../../src/embedded/shutdown.js';
import { useStandIns } from './stand-ins.js';
import { running, waitUntil } from './support.js';

const standIns = useStandIns();
const aProcess = (): ProcessId => standIns.aProcess().id;
const anEndedProcess = standIns.anEndedProcess;

const freshPaths: () => Promise<ShutdownPaths> = standIns.freshMeta;

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
  const postmaster = (await standIns.aSlowToStopProcess()).id;
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

/** A stand-in postmaster that survives SIGINT and prints a line for each one it gets. */
async function aCountingProcess(): Promise<{ id: ProcessId; sigints: () => number }> {
  const child = standIns.spawn('sh', ['-c', 'trap "echo INT" INT; echo ready; while :; do sleep 0.05; done']);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await waitUntil(() => out.includes('ready'), 'the stand-in postmaster runs its trap');
  return { id: processOf(child.pid!), sigints: () => out.split('\n').filter((line) => line === 'INT').length };
}

test('a decided stop whose stopper still runs is left to it: no second SIGINT', async () => {
  const p = await freshPaths();
  const postmaster = await aCountingProcess();
  await writeFile(p.stopMarker, JSON.stringify({ phase: 'stopping', stopper: aProcess(), postmaster: postmaster.id } satisfies StopMarker));
  expect(stopInProgress(p)).toBe('wait');
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(postmaster.sigints()).toBe(0);

  // The same marker once its stopper has ended: the new user sends the SIGINT itself.
  await writeFile(p.stopMarker, JSON.stringify({ phase: 'stopping', stopper: await anEndedProcess(), postmaster: postmaster.id } satisfies StopMarker));
  expect(stopInProgress(p)).toBe('wait');
  await waitUntil(() => postmaster.sigints() === 1, 'the decided stop is seen through with one SIGINT');
});

test('no marker: proceed; a marker being replaced (not yet readable): wait', async () => {
  const p = await freshPaths();
  expect(readStopMarker(p)).toBeNull();
  expect(stopInProgress(p)).toBe('proceed');
  await writeFile(p.stopMarker, '{"phase":"stopp');
  expect(readStopMarker(p)).toBeNull();
  expect(stopInProgress(p)).toBe('wait');
  expect(existsSync(p.stopMarker), 'a marker it can\'t read is not its to remove').toBe(true);
});

test('a marker about a postmaster whose pid was reused is not cleared as if it were this one', async () => {
  const p = await freshPaths();
  const postmaster = aProcess();
  const reused: ProcessId = { pid: postmaster.pid, startTime: '1' };
  const marker: StopMarker = { phase: 'stopping', stopper: aProcess(), postmaster: reused };
  await writeFile(p.stopMarker, JSON.stringify(marker));
  clearStopMarker(p, postmaster);
  expect(readStopMarker(p)).toEqual(marker);
  clearStopMarker(p, { pid: postmaster.pid + 1, startTime: '1' });
  expect(readStopMarker(p), 'nor one of another pid that started at the same tick').toEqual(marker);
  clearStopMarker(p, reused);
  expect(existsSync(p.stopMarker)).toBe(false);
});

test('the decided marker and the leases are private to the user that runs the server', async () => {
  const p = await freshPaths();
  const user = aProcess();
  takeLease(p.leasesDir, user);
  expect((await stat(p.leasesDir)).mode & 0o777).toBe(0o700);
  const lease = path.join(p.leasesDir, `${user.pid}-${user.startTime}`);
  expect((await stat(lease)).mode & 0o777).toBe(0o600);
  // The lease says when, nothing more (a command line could hold a password).
  expect(await readFile(lease, 'utf8')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n$/);
  releaseLease(p.leasesDir, user);
  expect(await readdir(p.leasesDir)).toEqual([]);
  releaseLease(p.leasesDir, user); // a lease already gone is no error

  expect(tryStop(p, aProcess(), processOf(process.pid))).toBe('stopping');
  expect((await stat(p.stopMarker)).mode & 0o777).toBe(0o600);
});

test('files in the leases folder that are not leases are neither counted nor removed', async () => {
  const p = await freshPaths();
  await mkdir(p.leasesDir);
  await writeFile(path.join(p.leasesDir, 'README'), 'not a lease');
  expect(liveLeaseHolders(p.leasesDir)).toEqual([]);
  expect(await readdir(p.leasesDir)).toEqual(['README']);
  expect(liveLeaseHolders(path.join(p.leasesDir, 'missing')), 'no folder yet: nobody').toEqual([]);
});
