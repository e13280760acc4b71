/**
 * A private PgBouncer in transaction-pooling mode in front of the test server, as Neon's pooled
 * endpoint is, for tests that must show what happens through such a pooler. It forwards every
 * database name to the test server and logs in there with the server URL's own user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** The pgbouncer binary, if this machine has one (Debian's package installs /usr/sbin/pgbouncer). */
export function findPgBouncer(): string | null {
  for (const candidate of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']) {
    if (spawnSync(candidate, ['--version']).status === 0) return candidate;
  }
  return null;
}

/** A running PgBouncer. */
export interface PgBouncer {
  /** `url` (a URL of the test server) rewritten to go through the pooler. */
  through(url: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Starts PgBouncer (pool_mode = transaction) in front of the server of `serverUrl`. */
export async function startPgBouncer(binary: string, serverUrl: string): Promise<PgBouncer> {
  const server = new URL(serverUrl);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vault-db-pgbouncer-'));
  // PgBouncer refuses to run as root; it then runs as `nobody`, who must write its log here.
  await chmod(dir, 0o777);
  const port = await freePort();
  const user = decodeURIComponent(server.username || 'postgres');
  const password = server.password ? ` password=${decodeURIComponent(server.password)}` : '';
  await writeFile(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || '5432'} user=${user}${password}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      // Clients are not authenticated here (the test server trusts the one login above).
      'auth_type = any',
      'pool_mode = transaction',
      'default_pool_size = 4',
      'max_client_conn = 200',
      'ignore_startup_parameters = extra_float_digits,options,statement_timeout,lock_timeout',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const args = process.getuid?.() === 0 ? ['-u', 'nobody', path.join(dir, 'pgbouncer.ini')] : [path.join(dir, 'pgbouncer.ini')];
  const child: ChildProcess = spawn(binary, args, { stdio: 'ignore' });
  let exited = false;
  child.once('exit', () => { exited = true; });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`pgbouncer exited at start; see ${path.join(dir, 'pgbouncer.log')}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error('pgbouncer did not start listening within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    through: (url) => {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    stop: async () => {
      if (!exited) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT');
        await gone;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A pooler that is already there: on the Neon-shaped stack, its own PgBouncer (transaction mode,
 * TLS on both sides), whose URL is the suite's pooled URL. A PgBouncer started by the test could
 * not reach that server, which refuses plain TCP.
 */
export function existingPooler(pooledServerUrl: string): PgBouncer {
  const pooler = new URL(pooledServerUrl);
  return {
    through(url: string): string {
      const target = new URL(url);
      target.host = pooler.host;
      target.username = pooler.username;
      target.password = pooler.password;
      target.search = pooler.search;
      return target.toString();
    },
    stop: async () => {},
  };
}
