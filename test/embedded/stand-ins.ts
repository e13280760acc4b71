/**
 * Stand-in processes for the tests of the embedded server's process logic (the stop protocol, the
 * watchdog, process identity, pid files): real processes that cost nothing to start, in place of
 * PostgreSQL servers and their users. `sleep` plays a postmaster, since SIGINT ends it as it ends
 * PostgreSQL. Every process started here is killed after its test.
 */
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { metaPaths } from '../../src/embedded/layout.js';
import { processOf, type ProcessId } from '../../src/embedded/process-identity.js';
import { scratchFolder } from './support.js';

/** What {@link useStandIns} gives a test file. */
export interface StandIns {
  /** The test file's scratch folder under /tmp (see scratchFolder), removed after its tests. */
  folder(): string;
  /** Starts `command` (stdout piped, the rest ignored, unless `options` says otherwise). */
  spawn(command: string, args: string[], options?: SpawnOptions): ChildProcess;
  /** A running `sleep`. */
  aProcess(): { id: ProcessId; child: ChildProcess };
  /** A running `sleep` that ignores SIGINT, like a server still shutting down; resolves once it does. */
  aSlowToStopProcess(): Promise<{ id: ProcessId; child: ChildProcess }>;
  /** A process that has ended (and was reaped): its pid names nobody now. */
  anEndedProcess(): Promise<ProcessId>;
  /** A fresh data dir in the scratch folder (no PostgreSQL in it), with its `vault-db` meta folder made. */
  freshDataDir(): Promise<string>;
  /** The files of a fresh data dir (see freshDataDir), named as layout.ts names them. */
  freshMeta(): Promise<ReturnType<typeof metaPaths>>;
}

/** Registers the hooks that make and clean up stand-ins; call it once, at a test file's top level. */
export function useStandIns(): StandIns {
  let scratch: Awaited<ReturnType<typeof scratchFolder>> | undefined;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    scratch = await scratchFolder();
  });
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });
  afterAll(async () => {
    await scratch?.remove();
  });

  const start = (command: string, args: string[], options: SpawnOptions = {}): ChildProcess => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'], ...options });
    children.push(child);
    return child;
  };
  const aProcess = () => {
    const child = start('sleep', ['60'], { stdio: 'ignore' });
    return { id: processOf(child.pid!), child };
  };
  const aSlowToStopProcess = async () => {
    // A SIGINT that came before the trap would end the shell: wait until it is set. The ignored
    // disposition survives the exec, so sleep ignores SIGINT too.
    const child = start('sh', ['-c', 'trap "" INT; echo ready; exec sleep 60']);
    await new Promise((resolve, reject) => {
      child.stdout!.once('data', resolve);
      child.once('exit', () => reject(new Error('the slow-to-stop stand-in ended before it was ready')));
    });
    return { id: processOf(child.pid!), child };
  };
  const freshDataDir = async () => {
    const dataDir = path.join(folder(), `data-${Math.random().toString(36).slice(2)}`);
    await mkdir(metaPaths(dataDir).metaDir, { recursive: true });
    return dataDir;
  };
  const folder = () => {
    if (!scratch) throw new Error('the scratch folder is made in beforeAll');
    return scratch.path;
  };
  return {
    folder,
    spawn: start,
    aProcess,
    aSlowToStopProcess,
    anEndedProcess: async () => {
      const { id, child } = aProcess();
      const ended = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await ended;
      return id;
    },
    freshDataDir,
    freshMeta: async () => metaPaths(await freshDataDir()),
  };
}
