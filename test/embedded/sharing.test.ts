/**
 * The server belongs to its data dir and is shared safely (#14.10), proven with real processes:
 * it is reused only when it serves this data dir, never stopped while another process uses it,
 * and reaped or adopted, never left running unnoticed, after its users were killed.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runningPostmaster } from '../../src/embedded/postmaster.js';
import { startEmbeddedPostgres } from '../../src/embedded-postgres.js';
import { runCli } from '../support/cli.js';
import { copyTree, freePort, queryOne, release, running, scratchFolder, started, startUser, waitUntil } from './support.js';

// This file's ports.
const PORTS: [number, number] = [54420, 54439];
let scratch: Awaited<ReturnType<typeof scratchFolder>>;
let template: string;
let counter = 0;
/** A new folder for a data dir: empty when `empty`, else a copy of a made (stopped) data dir, which saves an initdb. */
async function newDataDir(empty = false): Promise<string> {
  const dir = path.join(scratch.path, `data-${++counter}`);
  if (!empty) await copyTree(template, dir);
  return dir;
}

beforeAll(async () => {
  scratch = await scratchFolder();
  template = path.join(scratch.path, 'template');
  await (await startEmbeddedPostgres({ dataDir: template, port: await freePort(PORTS) })).stop();
});

afterAll(async () => {
  await scratch.remove();
});

/** The watchdog's pid from its file, once it is there. */
async function watchdogPid(dataDir: string): Promise<number> {
  let pid = 0;
  await waitUntil(async () => {
    const text = await readFile(path.join(dataDir, 'vault-db', 'watchdog'), 'utf8').catch(() => '');
    pid = text ? (JSON.parse(text) as { watchdog: { pid: number } }).watchdog.pid : 0;
    return pid > 0 && running(pid);
  }, 'the watchdog runs');
  return pid;
}

describe('one server per data dir, shared by its users', () => {
  test('a second process reuses the server; the first leaving does not stop it; the last leaving does', async () => {
    const dataDir = await newDataDir();
    const port = await freePort(PORTS);
    const first = await startUser({ dataDir, port }, 'hold');
    const second = await startUser({ dataDir, port }, 'hold');
    expect(started(first).origin).toBe('started');
    expect(started(second).origin).toBe('reused');
    expect(started(second).pid).toBe(started(first).pid);
    // Neither adopted anything, and a data dir where it was asked for is not announced as moved.
    for (const user of [first, second]) expect(user.stderr()).not.toMatch(/adopted|keeps its data/);

    await release(first);
    expect(running(started(first).pid), 'still running for the second user').toBe(true);
    expect(await queryOne<{ one: number }>(started(second).url, 'select 1 as one')).toEqual({ one: 1 });

    await release(second);
    await waitUntil(() => !running(started(first).pid), 'the last user leaving stops the server');
    expect(await readdir(path.join(dataDir, 'vault-db', 'users'))).toEqual([]);
  });

  test('npm run walkthrough does not stop the server under another process that uses it (say, npm test)', async () => {
    const dataDir = await newDataDir();
    const port = await freePort(PORTS);
    const tests = await startUser({ dataDir, port }, 'hold');
    try {
      const start = await runCli('npm', ['run', 'walkthrough'], { VAULT_DB_DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(port) }, 120_000);
      expect(start.code, start.stderr).toBe(0);
      expect(start.stdout).toContain('embedded PostgreSQL');
      expect(running(started(tests).pid), 'the walkthrough left the server running').toBe(true);
      expect(await queryOne<{ one: number }>(started(tests).url, 'select 1 as one')).toEqual({ one: 1 });
    } finally {
      await release(tests);
    }
    await waitUntil(() => !running(started(tests).pid), 'the server stops after its last user');
  });

  test("another checkout's server on the same port is never used, even when it takes the same login", async () => {
    // A copied checkout: the same data dir contents, so the same password works on both servers.
    const original = await newDataDir();
    const port = await freePort(PORTS);
    const other = await startUser({ dataDir: original, port }, 'hold');
    try {
      // Copied while the original runs: its postmaster.pid comes along and names a live server.
      const copy = await newDataDir(true);
      await copyTree(original, copy);
      expect(await readFile(path.join(copy, 'postmaster.pid'), 'utf8')).toContain(String(port));
      const mine = await startUser({ dataDir: copy, port }, 'exit');
      expect(mine.report.ok, 'must not use the server of another data dir').toBe(false);
      expect(mine.report.ok === false && mine.report.reason).toBe('port_in_use');
      expect(runningPostmaster(copy)).toBeNull();
      expect(running(started(other).pid)).toBe(true);
    } finally {
      await release(other);
    }
  });

  test('processes that start at once on a new data dir: one data dir, one server, all share it', async () => {
    const dataDir = await newDataDir(true);
    const port = await freePort(PORTS);
    const users = await Promise.all([1, 2, 3].map(() => startUser({ dataDir, port }, 'hold')));
    const pids = new Set(users.map((u) => started(u).pid));
    expect(pids.size, 'one server').toBe(1);
    expect(users.map((u) => started(u).origin).sort()).toEqual(['reused', 'reused', 'started']);
    expect((await readdir(scratch.path)).filter((name) => name.includes('.init-')), 'no half-made data dirs left').toEqual([]);
    for (const user of users) await release(user);
    await waitUntil(() => !running([...pids][0]!), 'the server stops after its last user');
  });
});

describe('killed users', () => {
  test.each(['SIGKILL', 'SIGHUP'] as const)('after %s of its only user, the watchdog stops the server', async (signal) => {
    const dataDir = await newDataDir();
    const port = await freePort(PORTS);
    const user = await startUser({ dataDir, port }, 'hold');
    const pid = started(user).pid;
    await watchdogPid(dataDir);
    user.child.kill(signal);
    expect((await user.ended).signal).toBe(signal);
    await waitUntil(() => !running(pid), 'the orphaned server is stopped');
  });

  test('a server whose users and watchdog were all killed is adopted by the next user, who then stops it', async () => {
    const dataDir = await newDataDir();
    const port = await freePort(PORTS);
    const user = await startUser({ dataDir, port }, 'hold');
    const pid = started(user).pid;
    process.kill(await watchdogPid(dataDir), 'SIGKILL');
    user.child.kill('SIGKILL');
    await user.ended;
    expect(running(pid), 'an orphan, with no one to stop it').toBe(true);

    const next = await startUser({ dataDir, port }, 'exit');
    expect(started(next).origin).toBe('adopted');
    expect(started(next).pid).toBe(pid);
    expect(next.stderr()).toContain(`adopted the embedded PostgreSQL (pid ${pid})`);
    await next.ended;
    await waitUntil(() => !running(pid), 'the adopter stops the server when it leaves');
  });

  test('a lease whose process has ended does not keep the server alive (the pid may even be reused)', async () => {
    const dataDir = await newDataDir();
    const port = await freePort(PORTS);
    const handle = await startEmbeddedPostgres({ dataDir, port });
    // A lease of a pid that runs now but started at another time: a reused pid, not the holder.
    await writeFile(path.join(dataDir, 'vault-db', 'users', `${process.ppid}-1`), '');
    await writeFile(path.join(dataDir, 'vault-db', 'users', '999999999-1'), '');
    await handle.stop();
    expect(running(handle.pid)).toBe(false);
    expect(await readdir(path.join(dataDir, 'vault-db', 'users'))).toEqual([]);
  });
});
