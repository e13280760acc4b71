/**
 * Finding a data dir's server from its `postmaster.pid` (src/embedded/postmaster.ts), and the
 * turn to start one (src/embedded/start-turn.ts), on stand-in processes: a copy of `sleep` named
 * `postgres` plays the postmaster, in the data dir or elsewhere. A pid file that names an ended
 * process, another program or another folder's server names no server; a stale one is removed
 * only by the process whose turn it is to start.
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { readPostmasterFile, runningPostmaster } from '../../src/embedded/postmaster.js';
import { currentProcess, processOf, type ProcessId } from '../../src/embedded/process-identity.js';
import { takeStartTurn } from '../../src/embedded/start-turn.js';
import { useStandIns } from './stand-ins.js';
import { waitUntil } from './support.js';

const standIns = useStandIns();
let fakePostgres: string;

beforeAll(async () => {
  // comm (/proc/<pid>/comm) is the executable's file name: this copy of sleep shows as "postgres".
  await mkdir(path.join(standIns.folder(), 'bin'));
  fakePostgres = path.join(standIns.folder(), 'bin', 'postgres');
  await copyFile('/bin/sleep', fakePostgres);
  await chmod(fakePostgres, 0o755);
});

const aDataDir = standIns.freshDataDir;

/** A process named `command` (a path) running in `cwd`; waits until /proc shows it under that name. */
async function running(command: string, cwd: string): Promise<ProcessId> {
  const child = standIns.spawn(command, ['60'], { cwd, stdio: 'ignore' });
  const name = path.basename(command);
  await waitUntil(async () => (await readFile(`/proc/${child.pid}/comm`, 'utf8').catch(() => '')).trim() === name, `${name} runs`);
  return processOf(child.pid!);
}

async function anEndedPid(): Promise<number> {
  return (await standIns.anEndedProcess()).pid;
}

/** The pid file PostgreSQL writes: pid, data dir, start time, port, socket dir, listen address, shared memory key, status. */
function pidFile(pid: number | string, dataDir: string, port = 5499, status = 'ready   '): string {
  return [pid, dataDir, '1764583200', port, '/tmp', '127.0.0.1', '  5499001         0', status, ''].join('\n');
}

describe('readPostmasterFile', () => {
  test('reads the pid, data dir, port and status PostgreSQL wrote', async () => {
    const dataDir = await aDataDir();
    await writeFile(path.join(dataDir, 'postmaster.pid'), pidFile(4242, dataDir, 5499, 'ready   '));
    expect(readPostmasterFile(dataDir)).toEqual({ pid: 4242, dataDir, port: 5499, status: 'ready' });
  });

  test('no file, or one still being written, is no server', async () => {
    const dataDir = await aDataDir();
    expect(readPostmasterFile(dataDir)).toBeNull();
    for (const text of ['', '\n', 'abc\n', '0\n', '-5\n', '12.5\n']) {
      await writeFile(path.join(dataDir, 'postmaster.pid'), text);
      expect(readPostmasterFile(dataDir), JSON.stringify(text)).toBeNull();
    }
    await writeFile(path.join(dataDir, 'postmaster.pid'), '4242\n');
    expect(readPostmasterFile(dataDir), 'only the pid written so far').toEqual({ pid: 4242, dataDir: '', port: Number.NaN, status: '' });
  });
});

describe('runningPostmaster', () => {
  test('a postgres process in the data dir is its server', async () => {
    const dataDir = await aDataDir();
    const postmaster = await running(fakePostgres, dataDir);
    await writeFile(path.join(dataDir, 'postmaster.pid'), pidFile(postmaster.pid, dataDir));
    expect(runningPostmaster(dataDir)).toEqual({ pid: postmaster.pid, dataDir, port: 5499, status: 'ready', process: postmaster });
  });

  test('the data dir reached through a symlink is the same folder', async () => {
    const dataDir = await aDataDir();
    const link = `${dataDir}-link`;
    await symlink(dataDir, link);
    const postmaster = await running(fakePostgres, dataDir);
    await writeFile(path.join(dataDir, 'postmaster.pid'), pidFile(postmaster.pid, dataDir));
    expect(runningPostmaster(link)?.pid).toBe(postmaster.pid);
  });

  test('a pid that names an ended process, another program, or a postgres of another folder names no server', async () => {
    const dataDir = await aDataDir();
    const file = path.join(dataDir, 'postmaster.pid');
    await writeFile(file, pidFile(await anEndedPid(), dataDir));
    expect(runningPostmaster(dataDir), 'ended').toBeNull();

    const sleeper = await running('/bin/sleep', dataDir);
    await writeFile(file, pidFile(sleeper.pid, dataDir));
    expect(runningPostmaster(dataDir), 'a pid reused by another program').toBeNull();

    const elsewhere = await running(fakePostgres, await aDataDir());
    await writeFile(file, pidFile(elsewhere.pid, dataDir));
    expect(runningPostmaster(dataDir), "another data dir's server").toBeNull();
  });
});

describe('takeStartTurn', () => {
  const turnFile = (dataDir: string) => path.join(dataDir, 'vault-db', 'starting');
  const layoutOf = (dataDir: string) => ({ dataDir, metaDir: path.join(dataDir, 'vault-db') });

  test('one process at a time: the first takes the turn, others get none until it is released', async () => {
    const dataDir = await aDataDir();
    const me = currentProcess();
    const turn = takeStartTurn(layoutOf(dataDir), me);
    expect(turn).not.toBeNull();
    expect(await readFile(turnFile(dataDir), 'utf8')).toBe(`${me.pid}-${me.startTime}`);
    expect((await stat(turnFile(dataDir))).mode & 0o777).toBe(0o600);

    const other = await running('/bin/sleep', dataDir);
    expect(takeStartTurn(layoutOf(dataDir), other), 'a live holder keeps its turn').toBeNull();
    expect(existsSync(turnFile(dataDir))).toBe(true);

    turn!.release();
    expect(existsSync(turnFile(dataDir))).toBe(false);
    expect(takeStartTurn(layoutOf(dataDir), other)).not.toBeNull();
  });

  test("a turn whose holder has ended is dropped by the next who looks, and taken by the one after", async () => {
    const dataDir = await aDataDir();
    await writeFile(turnFile(dataDir), `${await anEndedPid()}-1`);
    const me = currentProcess();
    expect(takeStartTurn(layoutOf(dataDir), me)).toBeNull();
    expect(existsSync(turnFile(dataDir))).toBe(false);
    expect(takeStartTurn(layoutOf(dataDir), me)).not.toBeNull();

    // An unreadable turn file (not a process id) is dropped the same way.
    const next = await aDataDir();
    await writeFile(turnFile(next), 'garbage');
    expect(takeStartTurn(layoutOf(next), me)).toBeNull();
    expect(existsSync(turnFile(next))).toBe(false);
  });

  test('releasing a turn that another process has taken over leaves that one alone', async () => {
    const dataDir = await aDataDir();
    const turn = takeStartTurn(layoutOf(dataDir), currentProcess());
    const other = await running('/bin/sleep', dataDir);
    await writeFile(turnFile(dataDir), `${other.pid}-${other.startTime}`);
    turn!.release();
    expect(await readFile(turnFile(dataDir), 'utf8')).toBe(`${other.pid}-${other.startTime}`);

    // A turn whose file someone already removed (a next user that found its holder gone) releases quietly.
    const gone = await aDataDir();
    const late = takeStartTurn(layoutOf(gone), currentProcess());
    await rm(turnFile(gone));
    expect(() => late!.release()).not.toThrow();
  });

  test('taking the turn removes a pid file no server stands behind, and keeps one that does', async () => {
    const stale = await aDataDir();
    await writeFile(path.join(stale, 'postmaster.pid'), pidFile(await anEndedPid(), stale));
    takeStartTurn(layoutOf(stale), currentProcess())!.release();
    expect(existsSync(path.join(stale, 'postmaster.pid'))).toBe(false);

    const live = await aDataDir();
    const postmaster = await running(fakePostgres, live);
    await writeFile(path.join(live, 'postmaster.pid'), pidFile(postmaster.pid, live));
    takeStartTurn(layoutOf(live), currentProcess())!.release();
    expect(existsSync(path.join(live, 'postmaster.pid'))).toBe(true);

    const none = await aDataDir();
    expect(takeStartTurn(layoutOf(none), currentProcess())).not.toBeNull();
  });
});
