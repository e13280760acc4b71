/**
 * Each way the embedded server can fail to start ends in one line that names the cause and the
 * fix, and points at the server's log when there is one (#14.9: before, the log was discarded and
 * the start rejected with `undefined`). Each condition is made for real: a port held by another
 * program, a damaged copy of a data dir, a data dir of PostgreSQL 15, binaries missing or not
 * executable. None of them leaves a server running or a lease behind.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { chmod, copyFile, mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { locateBinaries } from '../../src/embedded/binaries.js';
import { runningPostmaster } from '../../src/embedded/postmaster.js';
import { processOf } from '../../src/embedded/process-identity.js';
import type { StopMarker } from '../../src/embedded/shutdown.js';
import { EmbeddedServerError, startEmbeddedPostgres, type EmbeddedServerFailure } from '../../src/embedded-postgres.js';
import { copyTree, freePort, scratchFolder } from './support.js';

// This file's ports.
const PORTS: [number, number] = [54410, 54419];
let scratch: Awaited<ReturnType<typeof scratchFolder>>;
let template: string;

beforeAll(async () => {
  scratch = await scratchFolder();
  template = path.join(scratch.path, 'template');
  const server = await startEmbeddedPostgres({ dataDir: template, port: await freePort(PORTS) });
  await server.stop();
});

afterAll(async () => {
  await scratch.remove();
});

/** A fresh copy of the template data dir (password included). */
async function copyOfTemplate(name: string): Promise<string> {
  const dir = path.join(scratch.path, name);
  await copyTree(template, dir);
  return dir;
}

/** Starts the server and returns the error it fails with; fails the test if it starts. */
async function startFailure(options: Parameters<typeof startEmbeddedPostgres>[0]): Promise<EmbeddedServerError> {
  const outcome = await startEmbeddedPostgres(options).then(
    async (handle) => {
      await handle.stop();
      return new Error(`the server started (${handle.origin}) but should not have`);
    },
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(EmbeddedServerError);
  const error = outcome as EmbeddedServerError;
  expect(error.code).toBe('configuration');
  expect(error.message, 'one line').not.toContain('\n');
  return error;
}

/** No server runs from `dir` and no process holds a lease on it. */
async function leftNothingRunning(dir: string): Promise<void> {
  expect(runningPostmaster(dir), 'no server runs from the data dir').toBeNull();
  expect(await readdir(path.join(dir, 'vault-db', 'users')).catch(() => []), 'no leases').toEqual([]);
}

function expectReason(error: EmbeddedServerError, reason: EmbeddedServerFailure): void {
  expect(error.reason, error.message).toBe(reason);
}

describe('start failures say why', () => {
  test('a port held by another program: names the port and EMBEDDED_PG_PORT, and points at the log that says so', async () => {
    const dataDir = await copyOfTemplate('port-taken');
    const holder: Server = createServer();
    const port = await freePort(PORTS);
    await new Promise<void>((resolve, reject) => holder.once('error', reject).listen(port, '127.0.0.1', resolve));
    try {
      const error = await startFailure({ dataDir, port });
      expectReason(error, 'port_in_use');
      expect(error.message).toContain(`127.0.0.1:${port}`);
      expect(error.message).toContain('EMBEDDED_PG_PORT');
      expect(error.logFile).toBe(path.join(dataDir, 'vault-db', 'server.log'));
      expect(error.message).toContain(`Server log: ${error.logFile}`);
      expect(await readFile(error.logFile!, 'utf8')).toContain('Address already in use');
      await leftNothingRunning(dataDir);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  test.each([
    ['pg_control removed', (dir: string) => rm(path.join(dir, 'global', 'pg_control'))],
    ['pg_control cut short', (dir: string) => truncate(path.join(dir, 'global', 'pg_control'), 100)],
    ['the write-ahead log removed', async (dir: string) => {
      for (const name of await readdir(path.join(dir, 'pg_wal'))) await rm(path.join(dir, 'pg_wal', name), { recursive: true });
    }],
    ['postgresql.conf removed', (dir: string) => rm(path.join(dir, 'postgresql.conf'))],
  ])('a damaged data dir (%s): says it is damaged and to move it away', async (_what, damage) => {
    const dataDir = await copyOfTemplate(`damaged-${Math.random().toString(36).slice(2)}`);
    await damage(dataDir);
    const error = await startFailure({ dataDir, port: await freePort(PORTS) });
    expectReason(error, 'data_dir_damaged');
    expect(error.message).toContain(dataDir);
    expect(error.message).toMatch(/damaged \(.+\); move it away or delete it/);
    expect(error.logFile).toBe(path.join(dataDir, 'vault-db', 'server.log'));
    await leftNothingRunning(dataDir);
  });

  test('a data dir of PostgreSQL 15: names both versions, and nothing in it is touched', async () => {
    const dataDir = await copyOfTemplate('pg15');
    await writeFile(path.join(dataDir, 'PG_VERSION'), '15\n');
    const before = await snapshot(dataDir);
    const error = await startFailure({ dataDir, port: await freePort(PORTS) });
    expectReason(error, 'data_dir_version');
    expect(error.message).toContain('PostgreSQL 15');
    expect(error.message).toContain('PostgreSQL 17');
    expect(error.message).toContain('VAULT_DB_DATA_DIR');
    expect(await snapshot(dataDir)).toEqual(before);
  });

  test('a folder with other files in it: not used as a data dir', async () => {
    const dataDir = path.join(scratch.path, 'not-a-data-dir');
    await mkdir(dataDir);
    await writeFile(path.join(dataDir, 'notes.txt'), 'mine\n');
    const error = await startFailure({ dataDir, port: await freePort(PORTS) });
    expectReason(error, 'not_a_data_dir');
    expect(await readdir(dataDir)).toEqual(['notes.txt']);
  });

  test('a data dir without a private password (made by an older vault-db): says to delete it', async () => {
    const dataDir = await copyOfTemplate('legacy');
    await rm(path.join(dataDir, 'vault-db', 'password'));
    const error = await startFailure({ dataDir, port: await freePort(PORTS) });
    expectReason(error, 'no_private_password');
    expect(error.message).toContain(`rm -rf ${dataDir}`);
    await leftNothingRunning(dataDir);
  });

  describe('binaries', () => {
    let native: string;
    beforeAll(async () => {
      native = path.join(scratch.path, 'native');
      // Hard links: a full copy of the 60 MB of binaries in no time; each test replaces, never edits, a file.
      await copyTree((await locateBinaries()).nativeDir, native, true);
    });

    test('a missing postgres binary: names it and says to reinstall', async () => {
      await rm(path.join(native, 'bin', 'postgres'));
      try {
        const error = await startFailure({ dataDir: path.join(scratch.path, 'no-binary'), port: await freePort(PORTS), nativeDir: native });
        expectReason(error, 'binary_missing');
        expect(error.message).toContain(path.join(native, 'bin', 'postgres'));
        expect(error.message).toContain('npm ci');
      } finally {
        await copyFile(path.join((await locateBinaries()).nativeDir, 'bin', 'postgres'), path.join(native, 'bin', 'postgres'));
        await chmod(path.join(native, 'bin', 'postgres'), 0o755);
      }
    });

    test('an initdb that is not executable: names it and its mode', async () => {
      const initdb = path.join(native, 'bin', 'initdb');
      await rm(initdb);
      await copyFile(path.join((await locateBinaries()).nativeDir, 'bin', 'initdb'), initdb);
      await chmod(initdb, 0o644);
      const error = await startFailure({ dataDir: path.join(scratch.path, 'no-exec'), port: await freePort(PORTS), nativeDir: native });
      expectReason(error, 'binary_not_executable');
      expect(error.message).toContain(initdb);
      expect(error.message).toContain('mode 644');
    });
  });

  test("another process's stop still being decided is waited for, up to the timeout; once it ends, the start goes ahead", async () => {
    const dataDir = await copyOfTemplate('stop-decided-elsewhere');
    // A stopper still deciding about a server that still runs (stand-ins: sleep), as shutdown.ts
    // writes the marker. A new user must not start or use a server while that stands.
    const stopper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const server = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const marker: StopMarker = { phase: 'deciding', stopper: processOf(stopper.pid!), postmaster: processOf(server.pid!) };
      await writeFile(path.join(dataDir, 'vault-db', 'stopping'), JSON.stringify(marker), { mode: 0o600 });
      const port = await freePort(PORTS);

      const error = await startFailure({ dataDir, port, timeoutMs: 1_500 });
      expectReason(error, 'start_timeout');
      const logFile = path.join(dataDir, 'vault-db', 'server.log');
      expect(error.message).toBe(`Timed out waiting for another process to finish starting or stopping the embedded PostgreSQL of ${dataDir}; run again. Server log: ${logFile}`);
      await leftNothingRunning(dataDir);

      stopper.kill('SIGKILL');
      await new Promise((resolve) => stopper.once('exit', resolve));
      const handle = await startEmbeddedPostgres({ dataDir, port, timeoutMs: 60_000 });
      expect(handle.origin).toBe('started');
      await handle.stop();
    } finally {
      stopper.kill('SIGKILL');
      server.kill('SIGKILL');
    }
  });

  test('a port that is no port: one line naming EMBEDDED_PG_PORT and the value, trimmed', async () => {
    const previous = process.env.EMBEDDED_PG_PORT;
    process.env.EMBEDDED_PG_PORT = ' 54x ';
    try {
      const error = await startFailure({ dataDir: path.join(scratch.path, 'bad-port') });
      expectReason(error, 'start_failed');
      expect(error.message).toBe('EMBEDDED_PG_PORT must be a port number from 1 to 65535, not "54x".');
      const outOfRange = await startFailure({ dataDir: path.join(scratch.path, 'bad-port'), port: 65536 });
      expect(outOfRange.message).toBe('EMBEDDED_PG_PORT must be a port number from 1 to 65535, not "65536".');
    } finally {
      if (previous === undefined) delete process.env.EMBEDDED_PG_PORT;
      else process.env.EMBEDDED_PG_PORT = previous;
    }
  });
});

/** Every file under `dir` with its content, to prove nothing changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    files[path.relative(dir, full)] = entry.isFile() ? (await readFile(full)).toString('base64') : 'dir';
  }
  return files;
}
