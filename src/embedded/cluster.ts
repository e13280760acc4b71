/**
 * The data dir: made once by initdb, with its private password, and checked on every start.
 *
 * A new data dir is built in a private sibling folder (mode 0700) and renamed into place only when
 * it is complete, password file included. So a crash during the first start leaves no half-made
 * data dir (the next start would fail on it) and no readable password anywhere; and two processes
 * that start at once can't both run initdb on the same folder (the second rename loses and its
 * copy is dropped).
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { EmbeddedServerError } from './errors.js';
import { type Layout, metaPaths } from './layout.js';
import { writePrivateFile } from './private-file.js';
import { currentProcess, formatProcessId, isRunning, parseProcessId } from './process-identity.js';

/** The superuser initdb creates; it logs in with the data dir's password. */
export const SUPERUSER = 'postgres';

/** Whether the data dir is there yet. */
export type ClusterState = 'absent' | 'ready';

/**
 * Checks the data dir without changing it.
 *
 * @throws EmbeddedServerError `not_a_data_dir`, `data_dir_version` or `no_private_password`
 */
export async function inspectCluster(layout: Layout): Promise<ClusterState> {
  const entries = await readdir(layout.dataDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (entries === null || entries.length === 0) return 'absent';
  const version = await readFile(path.join(layout.dataDir, 'PG_VERSION'), 'utf8').catch(() => null);
  if (version === null) {
    throw new EmbeddedServerError(
      'not_a_data_dir',
      `${layout.dataDir} is not empty but is no PostgreSQL data dir (it has no PG_VERSION); point VAULT_DB_DATA_DIR at a new or empty folder, or move this one away.`,
    );
  }
  const found = Number(version.trim());
  if (found !== layout.major) {
    throw new EmbeddedServerError(
      'data_dir_version',
      `${layout.dataDir} was made by PostgreSQL ${version.trim()}, but the embedded server is PostgreSQL ${layout.major}, which can't open it; point VAULT_DB_DATA_DIR at another folder, or move this one away (its data can be carried over with PostgreSQL ${version.trim()}'s pg_dump).`,
    );
  }
  const password = await readFile(layout.passwordFile, 'utf8').catch(() => null);
  if (!password?.trim()) {
    throw new EmbeddedServerError(
      'no_private_password',
      `${layout.dataDir} has no private password file (${layout.passwordFile}): it was made by an older vault-db, whose server anyone on this machine could log in to with a fixed password; delete the folder (rm -rf ${layout.dataDir}) and run again to get a new one with its own password.`,
    );
  }
  return 'ready';
}

/** The data dir's password. */
export async function readPassword(layout: Layout): Promise<string> {
  return (await readFile(layout.passwordFile, 'utf8')).trim();
}

/**
 * Makes the data dir: initdb in a private sibling folder, with a new random password, then one
 * rename into place. Returns quietly when another process made it meanwhile.
 *
 * @throws EmbeddedServerError (`initdb_failed`)
 */
export async function createCluster(layout: Layout): Promise<void> {
  const parent = path.dirname(layout.dataDir);
  await mkdir(parent, { recursive: true });
  await removeAbandonedBuilds(layout.dataDir);

  const build = `${layout.dataDir}.init-${formatProcessId(currentProcess())}-${randomBytes(4).toString('hex')}`;
  const owner = layout.user.switched ? { uid: layout.user.uid, gid: layout.user.gid } : undefined;
  await mkdir(build, { mode: 0o700 });
  try {
    if (owner) await chown(build, owner.uid, owner.gid);
    // 32 random bytes; base64url needs no escaping in a URL or in SQL.
    const password = randomBytes(32).toString('base64url');
    const pwfile = path.join(build, 'pwfile');
    await writePrivateFile(pwfile, `${password}\n`, owner);
    const pgdata = path.join(build, 'pgdata');
    await runInitdb(layout, pgdata, pwfile);
    await rm(pwfile);

    const meta = metaPaths(pgdata);
    await mkdir(meta.metaDir, { mode: 0o700 });
    await writePrivateFile(meta.passwordFile, `${password}\n`);
    await rename(pgdata, layout.dataDir).catch((error: NodeJS.ErrnoException) => {
      // Another process's data dir got there first; ours is dropped below.
      if (error.code !== 'EEXIST' && error.code !== 'ENOTEMPTY') throw error;
    });
  } finally {
    await rm(build, { recursive: true, force: true });
  }
}

function runInitdb(layout: Layout, pgdata: string, pwfile: string): Promise<void> {
  const args = [`--pgdata=${pgdata}`, `--username=${SUPERUSER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'];
  const ids = layout.user.switched ? { uid: layout.user.uid, gid: layout.user.gid } : {};
  return new Promise((resolve, reject) => {
    execFile(layout.binaries.initdb, args, { ...ids, env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
      if (!error) return resolve();
      const lines = `${stderr}\n${stdout}`.split('\n').map((l) => l.trim()).filter(Boolean);
      const reason = lines.find((l) => l.startsWith('initdb: error:')) ?? lines.at(-1) ?? error.message;
      reject(new EmbeddedServerError('initdb_failed', `initdb could not make the data dir ${layout.dataDir}: ${reason}`, undefined, { cause: error }));
    });
  });
}

/** Removes half-made data dirs whose builder has ended (a crash during initdb). */
async function removeAbandonedBuilds(dataDir: string): Promise<void> {
  const prefix = `${path.basename(dataDir)}.init-`;
  const siblings = await readdir(path.dirname(dataDir)).catch(() => [] as string[]);
  for (const name of siblings) {
    if (!name.startsWith(prefix)) continue;
    const builder = parseProcessId(name.slice(prefix.length).replace(/-[0-9a-f]{8}$/, ''));
    // The builder's initdb outlives a SIGKILL of the builder and may still be writing for a
    // moment: retry on ENOTEMPTY instead of failing the start.
    if (builder && !isRunning(builder)) await rm(path.join(path.dirname(dataDir), name), { recursive: true, force: true, maxRetries: 20, retryDelay: 250 });
  }
}
