/**
 * The embedded server is no door into the machine for other local users (#14.11): each data dir
 * has its own random password, kept 0600 inside the data dir and nowhere else (not in a temp
 * folder, not after a crash); logins are scram-sha-256 over 127.0.0.1 only; and as root nothing
 * above the checkout is opened up.
 */
import { execFile, spawn } from 'node:child_process';
import { chown, copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isRoot, ROOT_SERVER_USER } from '../../src/embedded/server-user.js';
import { SHARED_FOLDER_NAME } from '../../src/embedded/shared-folder.js';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from '../../src/embedded-postgres.js';
import { copyTree, freePort, queryOne, release, ROOT, running, scratchFolder, started, startUser, waitUntil } from './support.js';

// This file's ports.
const PORTS: [number, number] = [54440, 54459];
const run = promisify(execFile);
let scratch: Awaited<ReturnType<typeof scratchFolder>>;
let server: EmbeddedPostgresHandle;
let password: string;
let tempBefore: string[];

/** Files that look like a password file in the temp folders (embedded-postgres wrote pg-password-* there). */
async function passwordLikeTempFiles(): Promise<string[]> {
  const found: string[] = [];
  for (const dir of new Set([tmpdir(), '/tmp', '/var/tmp'])) {
    for (const name of await readdir(dir).catch(() => [] as string[])) if (/pass|pwfile/i.test(name)) found.push(path.join(dir, name));
  }
  return found;
}

async function connect(user: string, pass: string | undefined): Promise<unknown> {
  const client = new pg.Client({ host: '127.0.0.1', port: Number(new URL(server.url).port), user, ...(pass === undefined ? {} : { password: pass }), database: 'postgres', connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return 'connected';
  } catch (error) {
    return (error as { code?: string }).code ?? (error as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

beforeAll(async () => {
  scratch = await scratchFolder();
  tempBefore = await passwordLikeTempFiles();
  server = await startEmbeddedPostgres({ dataDir: path.join(scratch.path, 'data'), port: await freePort(PORTS) });
  password = decodeURIComponent(new URL(server.url).password);
});

afterAll(async () => {
  await server?.stop();
  await scratch.remove();
});

describe('a private password per data dir', () => {
  test('random, 0600, owned by this user, inside the data dir; nothing like it in a temp folder', async () => {
    const file = path.join(server.dataDir, 'vault-db', 'password');
    expect((await readFile(file, 'utf8')).trim()).toBe(password);
    expect(password).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes
    const info = await stat(file);
    expect(info.mode & 0o777).toBe(0o600);
    expect(info.uid).toBe(process.getuid!());
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect(await passwordLikeTempFiles()).toEqual(tempBefore);
  });

  test('another data dir gets another password', async () => {
    const other = await startEmbeddedPostgres({ dataDir: path.join(scratch.path, 'other'), port: await freePort(PORTS) });
    try {
      expect(decodeURIComponent(new URL(other.url).password)).not.toBe(password);
    } finally {
      await other.stop();
    }
  });

  test('it is neither on the command line of the server nor in its log', async () => {
    expect(await readFile(`/proc/${server.pid}/cmdline`, 'utf8')).not.toContain(password);
    expect(await readFile(server.logFile, 'utf8')).not.toContain(password);
  });

  test('only the password logs in: not the old fixed one, not none, not another user', async () => {
    expect(await connect('postgres', password)).toBe('connected');
    expect(await connect('postgres', 'vault-db-local')).toBe('28P01');
    expect(await connect('postgres', '')).not.toBe('connected');
    expect(await connect('postgres', undefined)).not.toBe('connected');
    expect(await connect('root', password)).not.toBe('connected');
  });

  test('scram-sha-256 over 127.0.0.1 is the only way in: no Unix socket, no trust', async () => {
    const settings = await queryOne<{ listen: string; sockets: string }>(server.url, `select current_setting('listen_addresses') as listen, current_setting('unix_socket_directories') as sockets`);
    expect(settings).toEqual({ listen: '127.0.0.1', sockets: '' });
    const client = new pg.Client(pgConnectionConfig(server.url));
    await client.connect();
    try {
      const { rows } = await client.query('select type, database, user_name, address, auth_method from pg_hba_file_rules order by rule_number');
      expect(rows).toEqual([{ type: 'host', database: ['all'], user_name: ['all'], address: '127.0.0.1', auth_method: 'scram-sha-256' }]);
    } finally {
      await client.end();
    }
  });

  test.runIf(isRoot())('as root: another OS user can read neither the password nor the data dir', async () => {
    const { stdout } = await run('id', ['-u', 'nobody']);
    const nobody = Number(stdout.trim());
    const asNobody = (args: string[]) => run('cat', args, { uid: nobody, gid: nobody }).then(() => 'read', (e: { stderr?: string }) => e.stderr ?? 'failed');
    expect(await asNobody([path.join(server.dataDir, 'vault-db', 'password')])).toContain('Permission denied');
    expect(await asNobody([path.join(server.dataDir, 'PG_VERSION')])).toContain('Permission denied');
  });
});

describe('a crash during the first start', () => {
  test('leaves no readable password and no half-made data dir in use; the next start cleans up and works', async () => {
    const dataDir = path.join(scratch.path, 'crashed');
    const port = await freePort(PORTS);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/embedded/child.ts'), JSON.stringify({ dataDir, port }), 'exit'], { cwd: ROOT, stdio: 'ignore' });
    let build = '';
    await waitUntil(async () => {
      build = (await readdir(scratch.path)).find((name) => name.startsWith('crashed.init-')) ?? '';
      return build !== '' && (await readdir(path.join(scratch.path, build)).catch(() => [] as string[])).includes('pgdata');
    }, 'initdb is at work', 60_000);
    child.kill('SIGKILL'); // while initdb runs
    await new Promise((resolve) => child.once('exit', resolve));

    const buildDir = path.join(scratch.path, build);
    const buildInfo = await lstat(buildDir).catch(() => null);
    if (buildInfo) expect(buildInfo.mode & 0o077, 'the half-made data dir is private').toBe(0);
    expect(await readdir(dataDir).catch(() => []), 'nothing half-made where the data dir belongs').toEqual([]);
    expect(await passwordLikeTempFiles()).toEqual(tempBefore);

    const next = await startEmbeddedPostgres({ dataDir, port });
    try {
      expect(next.origin).toBe('started');
      expect((await readdir(scratch.path)).filter((name) => name.startsWith('crashed.init-')), 'the abandoned build is removed').toEqual([]);
    } finally {
      await next.stop();
    }
  });
});

describe.runIf(isRoot())('as a normal user (nobody, started from root)', () => {
  test("the server runs as that user, and everything it made is that user's alone", async () => {
    const [uid, gid] = await Promise.all(['-u', '-g'].map(async (flag) => Number((await run('id', [flag, 'nobody'])).stdout.trim())));
    const home = path.join(scratch.path, 'nobody');
    await mkdir(home);
    await chown(home, uid!, gid!);
    const dataDir = path.join(home, 'data');
    // nobody runs the code from a checkout it can read: the repository's own may sit in a folder
    // only root may enter (a `mktemp -d` clone is 0700), and then nobody could not load it at all.
    const checkout = path.join(home, 'checkout');
    await mkdir(path.join(checkout, 'test', 'embedded'), { recursive: true });
    await copyTree(path.join(ROOT, 'node_modules'), path.join(checkout, 'node_modules'), true);
    await copyTree(path.join(ROOT, 'src'), path.join(checkout, 'src'));
    await copyFile(path.join(ROOT, 'package.json'), path.join(checkout, 'package.json'));
    await copyFile(path.join(ROOT, 'test/embedded/child.ts'), path.join(checkout, 'test/embedded/child.ts'));
    const user = await startUser({ dataDir, port: await freePort(PORTS) }, 'hold', { HOME: home }, checkout, path.join(checkout, 'test/embedded/child.ts'), { uid: uid!, gid: gid! });
    const handle = started(user);
    try {
      expect(handle.dataDir).toBe(dataDir);
      expect(await readFile(`/proc/${handle.pid}/status`, 'utf8')).toMatch(new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
      for (const file of ['.', 'vault-db', 'vault-db/password', 'vault-db/server.log']) {
        const info = await stat(path.join(dataDir, file));
        expect([file, info.uid, info.mode & 0o077], file).toEqual([file, uid, 0]);
      }
    } finally {
      await release(user);
    }
    await waitUntil(() => !running(handle.pid), 'the server stops when its user leaves');
  });
});

describe.runIf(isRoot())('as root', () => {
  test('a checkout in a private folder (mktemp -d, 0700) works, and no folder above it changes mode', async () => {
    const parent = await mkdtemp('/tmp/embedded-private-');
    const checkout = path.join(parent, 'checkout');
    let standIn = '';
    try {
      await mkdir(path.join(checkout, 'test', 'embedded'), { recursive: true });
      // A checkout of its own (hard links: quick), so the binaries too are out of the postgres user's reach.
      await copyTree(path.join(ROOT, 'node_modules'), path.join(checkout, 'node_modules'), true);
      await copyTree(path.join(ROOT, 'src'), path.join(checkout, 'src'));
      await copyFile(path.join(ROOT, 'package.json'), path.join(checkout, 'package.json'));
      await copyFile(path.join(ROOT, 'test/embedded/child.ts'), path.join(checkout, 'test/embedded/child.ts'));
      const ancestors = [checkout, parent, '/tmp', '/'];
      const modes = async () => Promise.all(ancestors.map(async (dir) => `${dir} ${((await stat(dir)).mode & 0o7777).toString(8)}`));
      const before = await modes();
      expect(before[1]).toBe(`${parent} 700`);

      const user = await startUser({ port: await freePort(PORTS) }, 'hold', { VAULT_DB_DATA_DIR: '' }, checkout, path.join(checkout, 'test/embedded/child.ts'));
      const handle = started(user);
      standIn = handle.dataDir;
      try {
        expect(handle.dataDir.startsWith(`/var/tmp/${SHARED_FOLDER_NAME}/data-`), handle.dataDir).toBe(true);
        expect(user.stderr()).toContain(`can't reach ${path.join(checkout, '.data')}`);
        expect(await queryOne<{ one: number }>(handle.url, 'select 1 as one')).toEqual({ one: 1 });

        const serverUid = Number((await run('id', ['-u', ROOT_SERVER_USER])).stdout.trim());
        const status = await readFile(`/proc/${handle.pid}/status`, 'utf8');
        expect(status).toMatch(new RegExp(`^Uid:\\s+${serverUid}\\s`, 'm'));
        const binary = await readFile(`/proc/${handle.pid}/cmdline`, 'utf8');
        expect(binary.startsWith(`/var/tmp/${SHARED_FOLDER_NAME}/postgresql-`), 'a copy of the binaries the server user can reach').toBe(true);

        const shared = await lstat(`/var/tmp/${SHARED_FOLDER_NAME}`);
        expect([shared.uid, shared.mode & 0o777]).toEqual([0, 0o755]);
        const data = await stat(handle.dataDir);
        expect([data.uid, data.mode & 0o777]).toEqual([serverUid, 0o700]);
      } finally {
        user.child.stdin?.end();
        await user.ended;
      }
      await waitUntil(() => !running(handle.pid), 'the server stops when the checkout leaves');
      expect(await modes()).toEqual(before);
    } finally {
      await rm(parent, { recursive: true, force: true });
      if (standIn) await rm(standIn, { recursive: true, force: true });
    }
  });
});
