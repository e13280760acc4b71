/**
 * Writes a file that only its owner may read (mode 0600), atomically: the content goes to a new
 * file created 0600 from its first byte (O_EXCL, so no one else's file or link is reused), is
 * flushed to disk, and is renamed over the target. A crash leaves the old file or the new one,
 * never half of one, and never a readable copy elsewhere.
 *
 * Hand-written rather than write-file-atomic: that package installs process exit and signal
 * handlers (signal-exit), which this module must not (see importEmbeddedPostgres), and its current
 * major needs Node 22.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { chown, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** Writes `content` to `file` with mode 0600, atomically; `owner` hands it to another user (as root). */
export async function writePrivateFile(file: string, content: string, owner?: { uid: number; gid: number }): Promise<void> {
  const partial = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}`);
  const handle = await open(partial, 'wx', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
    await handle.close();
    if (owner) await chown(partial, owner.uid, owner.gid);
    await rename(partial, file);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(partial, { force: true });
    throw error;
  }
}
