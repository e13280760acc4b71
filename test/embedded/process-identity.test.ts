/**
 * Process identity (src/embedded/process-identity.ts): a pid with its start time, so that a lease
 * or stop marker of an ended process is never taken for a newcomer that got its pid. Real
 * processes only; Linux's /proc is the source of truth here, read independently of the code.
 */
import { chmod, copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { currentProcess, formatProcessId, isRunning, parseProcessId, processOf, processStartTime } from '../../src/embedded/process-identity.js';
import { useStandIns } from './stand-ins.js';
import { waitUntil } from './support.js';

const standIns = useStandIns();

/** Field 22 (starttime) of /proc/<pid>/stat; the greedy `.*` runs to the command name's last ')'. */
async function startTimeFromProc(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const match = /^\d+ \(.*\) \S+((?: \S+){19})/s.exec(stat);
  if (!match?.[1]) throw new Error(`unexpected /proc/${pid}/stat: ${stat}`);
  return match[1].trim().split(' ')[18] as string;
}

describe('reading a process', () => {
  test('this process: its pid and the start time /proc gives', async () => {
    const me = currentProcess();
    expect(me).toEqual({ pid: process.pid, startTime: await startTimeFromProc(process.pid) });
    expect(me.startTime).toMatch(/^\d+$/);
    expect(processOf(process.pid)).toEqual(me);
    expect(processStartTime(process.pid)).toBe(me.startTime);
  });

  test('a command name with spaces and parentheses does not shift the fields', async () => {
    const odd = path.join(standIns.folder(), 'a) b (c');
    await copyFile('/bin/sleep', odd);
    await chmod(odd, 0o755);
    const child = standIns.spawn(odd, ['60']);
    await waitUntil(async () => (await readFile(`/proc/${child.pid}/stat`, 'utf8')).includes('(a) b (c)'), 'the copy of sleep runs under its odd name');
    const id = processOf(child.pid!);
    expect(id.startTime).toBe(await startTimeFromProc(child.pid!));
    expect(isRunning(id)).toBe(true);
  });

  test('a pid with no process has no start time', async () => {
    expect(processStartTime((await standIns.anEndedProcess()).pid)).toBeNull();
  });
});

describe('isRunning', () => {
  test('a running process is running, with or without its start time', () => {
    const child = standIns.spawn('sleep', ['60']);
    expect(isRunning(processOf(child.pid!))).toBe(true);
    expect(isRunning({ pid: child.pid!, startTime: null }), 'without /proc only the pid is known').toBe(true);
  });

  test('a pid that runs but started at another time is a newcomer, not the process named', () => {
    const me = currentProcess();
    expect(isRunning({ pid: me.pid, startTime: String(Number(me.startTime) + 1) })).toBe(false);
    expect(isRunning({ pid: me.pid, startTime: '0' })).toBe(false);
  });

  test('an ended process is not running, with or without its start time', async () => {
    const id = await standIns.anEndedProcess();
    expect(isRunning(id)).toBe(false);
    expect(isRunning({ pid: id.pid, startTime: null })).toBe(false);
  });

  test('an ended process nobody has reaped yet (a zombie) is not running', async () => {
    // sleep 60 never waits for its child, so the short sleep it inherits from the shell stays a
    // zombie once it ends. It outlives the shell's exec, so the shell can't have reaped it first.
    const parent = standIns.spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 60']);
    const pid = await new Promise<number>((resolve) => parent.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
    await waitUntil(async () => /^\d+ \(.*\) Z /s.test(await readFile(`/proc/${pid}/stat`, 'utf8')), 'the child is a zombie');
    expect(isRunning(processOf(pid))).toBe(false);
  });

  test('no pid is not a process: 0, negative and fractional pids never are', () => {
    // process.kill(0, 0) and process.kill(-1, 0) would succeed: they address process groups.
    for (const pid of [0, -1, 1.5, Number.NaN]) expect(isRunning({ pid, startTime: null }), String(pid)).toBe(false);
  });
});

describe('lease file names', () => {
  test('formatProcessId and parseProcessId round-trip, a missing start time as x', () => {
    expect(formatProcessId({ pid: 12, startTime: '345' })).toBe('12-345');
    expect(formatProcessId({ pid: 12, startTime: null })).toBe('12-x');
    expect(parseProcessId('12-345')).toEqual({ pid: 12, startTime: '345' });
    expect(parseProcessId('12-x')).toEqual({ pid: 12, startTime: null });
    expect(parseProcessId(' 12-345\n'), 'surrounding whitespace is ignored').toEqual({ pid: 12, startTime: '345' });
  });

  test('anything else is not a lease name', () => {
    for (const name of ['', '12', '12-', '-345', 'a-345', '12-34a', '12-345-6', '12-y', '12 345', 'x12-345', '12-345.tmp']) {
      expect(parseProcessId(name), JSON.stringify(name)).toBeNull();
    }
  });
});
