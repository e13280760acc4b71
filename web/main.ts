/**
 * The bookmark page: unlocks the vault with a passphrase (PBKDF2 then AES-GCM, in the browser, via
 * examples/client-crypto.ts), and syncs bookmarks through the HTTP API. The server only ever sees
 * ciphertext. Keys and bookmarks live in memory only: a reload locks the vault again.
 *
 * When another device rotates the vault key, a push is refused as `stale_key` (or a pulled record
 * no longer decrypts and the vault's `keyVersion` has moved on): the page locks, keeps the edits it has not synced, and asks for the
 * passphrase again; unlocking opens the new envelope and pulls everything again under the new key.
 *
 * Conflicts are merged, never dropped: an edit that lost a race is re-applied field by field on
 * top of the server's version (fields this device did not change take the server's value, tags
 * are united); an edit of a record deleted elsewhere comes back as a new record.
 */
import { createEnvelope, decryptBookmark, encryptBookmark, openEnvelope, type Bookmark } from '../examples/client-crypto.js';

type Key = Awaited<ReturnType<typeof openEnvelope>>;
interface Pending { baseVersion: number; base: Bookmark | null; next: Bookmark | null }

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const unb64 = (text: string) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));

let token = '';
let key: Key | null = null;
/** The vault key version `key` belongs to (`VaultInfo.keyVersion`), sent with every push. */
let keyVersion = 1;
let cursor: string | null = null;
const records = new Map<string, { version: number; bookmark: Bookmark | null }>();
const pending = new Map<string, Pending>();
let timer: ReturnType<typeof setInterval> | undefined;
let syncing = false;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the page reads a few known fields of the API's documented responses
async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, json: await res.json() };
}

function status(text: string): void {
  $('status').textContent = text;
}

function merge(base: Bookmark | null, mine: Bookmark, theirs: Bookmark): Bookmark {
  const pick = <K extends 'url' | 'title'>(field: K) => (base && mine[field] === base[field] ? theirs[field] : mine[field]);
  return { url: pick('url'), title: pick('title'), tags: [...new Set([...theirs.tags, ...mine.tags])] };
}

async function push(): Promise<void> {
  if (pending.size === 0 || !key) return;
  const changes = [];
  for (const [recordId, p] of pending) {
    changes.push(p.next === null ? { recordId, baseVersion: p.baseVersion, deleted: true } : { recordId, baseVersion: p.baseVersion, ciphertext: b64(await encryptBookmark(key, p.next)) });
  }
  const sent = new Map(pending);
  const { status: code, json } = await api('POST', '/v1/vault/push', { changes, cursor, keyVersion });
  if (code === 409 && json.error?.code === 'stale_key') return relock();
  if (code !== 200) return;
  for (const a of json.applied as { recordId: string; version: number }[]) {
    records.set(a.recordId, { version: a.version, bookmark: sent.get(a.recordId)!.next });
    if (pending.get(a.recordId) === sent.get(a.recordId)) pending.delete(a.recordId);
  }
  for (const c of json.conflicts as { recordId: string; reason: string; server: { version: number; deleted: boolean; ciphertext: string | null } | null }[]) {
    const mine = sent.get(c.recordId)!;
    const theirs = c.server?.ciphertext ? await decryptBookmark(key, unb64(c.server.ciphertext)) : null;
    pending.delete(c.recordId);
    if (c.server) records.set(c.recordId, { version: c.server.version, bookmark: theirs });
    if (mine.next === null) continue; // deleting what changed or vanished elsewhere: the other side stands
    if (theirs && c.reason === 'version_mismatch') pending.set(c.recordId, { baseVersion: c.server!.version, base: theirs, next: merge(mine.base, mine.next, theirs) });
    else pending.set(crypto.randomUUID(), { baseVersion: 0, base: null, next: mine.next }); // deleted elsewhere or id taken: keep the edit as a new bookmark
  }
}

async function pull(): Promise<void> {
  for (;;) {
    const { status: code, json } = await api('GET', `/v1/vault/changes?cursor=${encodeURIComponent(cursor ?? '')}`);
    if (code === 410) { cursor = null; records.clear(); continue; }
    if (code !== 200 || !key) return;
    for (const c of json.changes as { recordId: string; version: number; deleted: boolean; ciphertext: string | null }[]) {
      let bookmark: Bookmark | null = null;
      if (!c.deleted && c.ciphertext) {
        try {
          bookmark = await decryptBookmark(key, unb64(c.ciphertext));
        } catch {
          // Not under this key: a rotation elsewhere re-encrypted it, or it is damaged.
          const vault = await api('GET', '/v1/vault');
          if (vault.status === 200 && vault.json.keyVersion !== keyVersion) return relock();
          status(`Bookmark ${c.recordId} can't be decrypted with this vault key; it is left out.`);
          continue;
        }
      }
      records.set(c.recordId, { version: c.version, bookmark });
    }
    cursor = json.cursor;
    if (!json.hasMore) return;
  }
}

async function sync(): Promise<void> {
  if (syncing || !key) return;
  syncing = true;
  try {
    // A push that can't reach the server must not stop the pull: reads may still get through.
    const pushed = await push().then(() => true, () => false);
    const pulled = key ? await pull().then(() => true, () => false) : true;
    if (!key) return; // relocked: its message stays up
    render();
    if (!pushed || !pulled) status(`The server can't be reached; ${pending.size} unsynced change(s) are kept and sent when it answers.`);
    else status(pending.size === 0 ? 'Synced.' : 'Syncing…');
  } finally {
    syncing = false;
  }
}

function render(): void {
  const list = $('list');
  list.replaceChildren();
  const shown = new Map<string, Bookmark>();
  for (const [id, r] of records) if (r.bookmark) shown.set(id, r.bookmark);
  for (const [id, p] of pending) if (p.next) shown.set(id, p.next); else shown.delete(id);
  for (const [id, b] of [...shown].sort((x, y) => x[1].title.localeCompare(y[1].title))) {
    const li = document.createElement('li');
    li.dataset.id = id;
    const a = document.createElement('a');
    a.href = b.url;
    a.textContent = b.title;
    a.className = 'title';
    const edit = document.createElement('button');
    edit.textContent = 'Edit';
    edit.className = 'edit';
    edit.onclick = () => {
      const title = prompt('Title', b.title);
      if (title === null) return;
      const tags = prompt('Tags, comma-separated', b.tags.join(', '));
      if (tags === null) return;
      change(id, { ...b, title, tags: tags.split(',').map((t) => t.trim()).filter((t) => t.length > 0) });
    };
    const del = document.createElement('button');
    del.textContent = 'Delete';
    del.className = 'delete';
    del.onclick = () => change(id, null);
    const tags = document.createElement('span');
    tags.className = 'tags';
    tags.textContent = b.tags.length > 0 ? ` [${[...b.tags].sort().join(', ')}]` : '';
    li.append(a, tags, ' ', edit, ' ', del);
    list.append(li);
  }
}

/**
 * The vault key changed on another device: forget the key, keep the unsynced edits (they are
 * plaintext here and get encrypted under the new key at the next push), and ask for the passphrase.
 */
function relock(): void {
  clearInterval(timer);
  key = null;
  $('vault').classList.add('hidden');
  $('login').classList.remove('hidden');
  ($('passphrase') as HTMLInputElement).value = '';
  status(`The vault key was changed on another device. Enter the passphrase to go on${pending.size > 0 ? `; ${pending.size} unsynced change(s) are kept` : ''}.`);
}

function change(id: string, next: Bookmark | null): void {
  const known = records.get(id);
  const waiting = pending.get(id);
  pending.set(id, waiting ? { ...waiting, next } : { baseVersion: known?.version ?? 0, base: known?.bookmark ?? null, next });
  render();
  void sync();
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  void (async () => {
    status('Unlocking…');
    const dev = await fetch('/dev/token', { method: 'POST', body: JSON.stringify({ user: ($('user') as HTMLInputElement).value }) });
    if (dev.ok) {
      const json = await dev.json();
      token = json.token;
      $('mode').textContent = json.warning;
      $('mode').style.display = 'block';
    }
    const passphrase = ($('passphrase') as HTMLInputElement).value;
    const vault = await api('GET', '/v1/vault');
    try {
      if (vault.status === 404) {
        const env = await createEnvelope(passphrase);
        const enabled = await api('POST', '/v1/vault', { wrappedKey: b64(env.wrappedKey), salt: b64(env.salt), kdfParams: env.kdfParams });
        key = env.vaultKey;
        keyVersion = enabled.json.keyVersion;
      } else {
        key = await openEnvelope(passphrase, { wrappedKey: unb64(vault.json.wrappedKey), salt: unb64(vault.json.salt), kdfParams: vault.json.kdfParams });
        keyVersion = vault.json.keyVersion;
      }
    } catch {
      status('Wrong passphrase.');
      return;
    }
    // Everything is read again under this key (after a relock, what was read is under an old one).
    cursor = null;
    records.clear();
    $('login').classList.add('hidden');
    $('vault').classList.remove('hidden');
    await sync();
    timer = setInterval(() => void sync(), 700);
  })();
});

$('add').addEventListener('submit', (event) => {
  event.preventDefault();
  const url = $('url') as HTMLInputElement;
  const title = $('title') as HTMLInputElement;
  change(crypto.randomUUID(), { url: url.value, title: title.value, tags: [] });
  url.value = '';
  title.value = '';
});

$('lock').addEventListener('click', () => location.reload());
