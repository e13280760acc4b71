/**
 * A two-device walkthrough of the sync protocol against a real database: a laptop and a phone
 * share one vault. Everything the server receives is ciphertext.
 */
import type { webcrypto } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { SyncService, type Change, type PushResult } from '../src/index.js';
import { createEnvelope, decryptBookmark, encryptBookmark, openEnvelope, type Bookmark } from './client-crypto.js';

/** A device's local state: its copy of the vault and how far it has read the feed. */
class Device {
  cursor: string | null = null;
  readonly replica = new Map<string, { version: number; bookmark: Bookmark | null }>();
  constructor(
    readonly name: string,
    readonly key: webcrypto.CryptoKey,
  ) {}

  /** Applies a pull page or conflict state to the replica. */
  async absorb(states: { recordId: string; version: number; deleted: boolean; ciphertext: Buffer | null }[]): Promise<void> {
    for (const s of states) {
      this.replica.set(s.recordId, { version: s.version, bookmark: s.ciphertext ? await decryptBookmark(this.key, s.ciphertext) : null });
    }
  }

  async pull(sync: SyncService, userId: string): Promise<number> {
    let count = 0;
    for (let more = true; more; ) {
      const page = await sync.pull(userId, { cursor: this.cursor });
      await this.absorb(page.changes);
      count += page.changes.length;
      this.cursor = page.cursor;
      more = page.hasMore;
    }
    return count;
  }

  /** Records what the server acknowledged, and adopts the returned cursor (always safe). */
  note(result: PushResult, sent: Map<string, Bookmark | null>): void {
    for (const a of result.applied) this.replica.set(a.recordId, { version: a.version, bookmark: sent.get(a.recordId) ?? null });
    this.cursor = result.cursor;
  }

  list(): string {
    return [...this.replica.entries()]
      .filter(([, r]) => r.bookmark)
      .map(([id, r]) => `${id}@v${r.version} "${r.bookmark?.title}"`)
      .join(', ');
  }
}

/** Runs the walkthrough for `userId`, printing each step. */
export async function runTwoDeviceWalkthrough(em: EntityManager, userId: string, print: (line: string) => void): Promise<void> {
  const sync = new SyncService(em);
  const passphrase = 'correct horse battery staple';

  // A fresh demo every time, so `npm run walkthrough` can be run again and again.
  if (await sync.getVault(userId)) await sync.disableVault(userId);

  const created = await createEnvelope(passphrase);
  const info = await sync.enableVault(userId, { ...created, deviceFingerprint: 'laptop' });
  print(`1. laptop enabled the vault (envelope v${info.version}, ${info.kdfParams.algorithm} ${'iterations' in info.kdfParams ? info.kdfParams.iterations : ''} iterations)`);
  const laptop = new Device('laptop', created.vaultKey);
  const envelope = await sync.getVault(userId);
  if (!envelope) throw new Error('vault vanished');
  const phone = new Device('phone', await openEnvelope(passphrase, envelope));
  print('2. phone fetched the envelope and unwrapped the vault key with the same passphrase');

  const push = async (device: Device, edits: { recordId: string; baseVersion: number; bookmark: Bookmark | null }[]) => {
    const sent = new Map<string, Bookmark | null>();
    const changes: Change[] = [];
    for (const e of edits) {
      sent.set(e.recordId, e.bookmark);
      changes.push(e.bookmark ? { recordId: e.recordId, baseVersion: e.baseVersion, ciphertext: await encryptBookmark(device.key, e.bookmark) } : { recordId: e.recordId, baseVersion: e.baseVersion, deleted: true });
    }
    const result = await sync.push(userId, { changes, cursor: device.cursor });
    device.note(result, sent);
    return result;
  };

  await push(laptop, [
    { recordId: 'bm-1', baseVersion: 0, bookmark: { url: 'https://postgresql.org', title: 'PostgreSQL', tags: ['db'] } },
    { recordId: 'bm-2', baseVersion: 0, bookmark: { url: 'https://mikro-orm.io', title: 'MikroORM', tags: ['orm'] } },
  ]);
  print(`3. laptop pushed 2 bookmarks: ${laptop.list()}`);
  await phone.pull(sync, userId);
  await push(phone, [{ recordId: 'bm-3', baseVersion: 0, bookmark: { url: 'https://neon.tech', title: 'Neon', tags: ['db', 'hosting'] } }]);
  print(`4. phone pulled, then pushed 1 bookmark: ${phone.list()}`);

  // Both devices edit bm-1 from version 1: the second push is a conflict, returned as data.
  await push(laptop, [{ recordId: 'bm-1', baseVersion: 1, bookmark: { url: 'https://postgresql.org', title: 'PostgreSQL docs', tags: ['db'] } }]);
  const conflicted = await push(phone, [{ recordId: 'bm-1', baseVersion: 1, bookmark: { url: 'https://postgresql.org', title: 'PostgreSQL', tags: ['db', 'reading'] } }]);
  const conflict = conflicted.conflicts[0];
  if (!conflict?.server?.ciphertext) throw new Error('expected a conflict');
  const theirs = await decryptBookmark(phone.key, conflict.server.ciphertext);
  print(`5. laptop renamed bm-1; phone's concurrent tag edit came back as a ${conflict.reason} conflict (server at v${conflict.server.version}: "${theirs.title}")`);
  const merged: Bookmark = { ...theirs, tags: [...new Set([...theirs.tags, 'reading'])] };
  await push(phone, [{ recordId: 'bm-1', baseVersion: conflict.server.version, bookmark: merged }]);
  print(`6. phone merged both edits and pushed at v${conflict.server.version}: "${merged.title}" [${merged.tags.join(', ')}]`);

  await push(laptop, [{ recordId: 'bm-2', baseVersion: laptop.replica.get('bm-2')?.version ?? 1, bookmark: null }]);
  print('7. laptop deleted bm-2 (a tombstone: version bumped, ciphertext erased)');

  const pulled = await laptop.pull(sync, userId);
  print(`8. laptop pulled ${pulled} change(s) and is up to date: ${laptop.list()}`);
  await phone.pull(sync, userId);
  print(`   phone is up to date too:                       ${phone.list()}`);
}
