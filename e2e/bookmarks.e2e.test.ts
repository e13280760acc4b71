/**
 * The bookmark page in a real browser (playwright-core driving Debian's Chromium), against the real
 * `npm start` (the page built, the server in dev mode) on a test database: two browser contexts are
 * two devices of one user. Create in one, see it in the other; a concurrent edit ends merged; a
 * delete propagates; a reload keeps the vault locked until the passphrase is entered; the database
 * holds only ciphertext. And a key rotation by another device locks the page without losing the
 * edit it could not send yet.
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import pg from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createEnvelope, decryptBookmark, encryptBookmark, openEnvelope } from '../examples/client-crypto.js';
import { startNpmStart, type NpmStart } from '../scripts/npm-start-process.js';
import type { KdfParams } from '../src/envelope.js';
import { createTestDatabase, type TestDatabase } from '../test/support/database.js';

const ROOT = resolve(import.meta.dirname, '..');
const PASSPHRASE = 'correct horse battery staple';
let db: TestDatabase;
let server: NpmStart | undefined;
let browser: Browser;
let base = '';

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  server = await startNpmStart({ ...process.env, DATABASE_URL: db.url, PORT: '0', HOST: '127.0.0.1', DIRECT_URL: '', AUTH_JWKS_URL: '', AUTH_ISSUER: '', AUTH_AUDIENCE: '' }, ROOT);
  base = server.base;
  expect(server.output()).toContain('the bookmark page at /');
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  if (server) expect(await server.stop()).toContain('stopped.');
  await db?.drop();
});

async function device(): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(base);
  return page;
}

async function unlock(page: Page, user = 'alice'): Promise<void> {
  await page.fill('#user', user);
  await page.fill('#passphrase', PASSPHRASE);
  await page.click('#unlock');
  await page.locator('#vault').waitFor({ state: 'visible' });
}

const item = (page: Page, title: string) => page.locator('#list li', { has: page.locator('a.title', { hasText: title }) });

async function edit(page: Page, title: string, answers: string[]): Promise<void> {
  const queue = [...answers];
  const onDialog = (d: { accept(text?: string): Promise<void> }) => void d.accept(queue.shift());
  page.on('dialog', onDialog);
  await item(page, title).locator('button.edit').click();
  while (queue.length > 0) await new Promise((r) => setTimeout(r, 20));
  page.off('dialog', onDialog);
}

test('two devices of one user: create, concurrent edit merged, delete, reload locks, only ciphertext stored', async () => {
  const a = await device();
  expect(await a.locator('#mode').isHidden()).toBe(true);
  await unlock(a);
  expect(await a.locator('#mode').textContent()).toContain('LOCAL DEV MODE');
  const b = await device();
  await unlock(b);

  // Create in A, see it in B.
  await a.fill('#url', 'https://example.org/alpha');
  await a.fill('#title', 'Alpha');
  await a.click('#add button');
  await item(b, 'Alpha').waitFor();

  // A concurrent edit: both devices edit version 1 while the vault row is held, so neither push
  // can apply before both edits are made; once it is released, one wins and the other gets a
  // version_mismatch conflict and merges (title from A, tags of both).
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  try {
    await holder.query('begin');
    await holder.query(`select 1 from vaults where user_id = 'dev:alice' for update`);
    await edit(a, 'Alpha', ['Alpha (edited in A)', 'a']);
    await edit(b, 'Alpha', ['Alpha', 'b']);
    await holder.query('commit');
  } finally {
    await holder.end();
  }
  for (const page of [a, b]) {
    await item(page, 'Alpha (edited in A)').locator('.tags', { hasText: '[a, b]' }).waitFor();
  }
  await a.screenshot({ path: join(process.env.E2E_SCREENSHOT_DIR ?? tmpdir(), 'vault-db-bookmarks.png') });

  // Delete in B, gone in A.
  await b.fill('#url', 'https://example.org/beta');
  await b.fill('#title', 'Beta');
  await b.click('#add button');
  await item(a, 'Beta').waitFor();
  await item(b, 'Beta').locator('button.delete').click();
  await item(a, 'Beta').waitFor({ state: 'detached' });

  // A reload locks the vault: nothing shows until the passphrase is entered again.
  await b.reload();
  expect(await b.locator('#vault').isHidden()).toBe(true);
  expect(await b.locator('#list li').count()).toBe(0);
  await b.fill('#user', 'alice');
  await b.fill('#passphrase', 'wrong passphrase');
  await b.click('#unlock');
  await b.locator('#status', { hasText: 'Wrong passphrase.' }).waitFor();
  expect(await b.locator('#vault').isHidden()).toBe(true);
  await b.fill('#passphrase', PASSPHRASE);
  await b.click('#unlock');
  await item(b, 'Alpha (edited in A)').waitFor();

  // The server holds only ciphertext: no title, URL, tag or passphrase in any stored byte.
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const { rows } = await client.query<{ bytes: Buffer | null }>('select ciphertext as bytes from records union all select wrapped_key from vaults union all select salt from vaults').finally(() => client.end());
  expect(rows.length).toBeGreaterThanOrEqual(4);
  for (const { bytes } of rows) {
    if (bytes === null) continue;
    for (const needle of ['Alpha', 'alpha', 'example.org', 'Beta', PASSPHRASE, 'edited']) {
      expect(bytes.includes(Buffer.from(needle))).toBe(false);
    }
  }
});

/** What another device does to rotate the key: every live record re-encrypted under a new key. */
async function rotateKeyElsewhere(user: string): Promise<void> {
  const { token } = (await (await fetch(`${base}/dev/token`, { method: 'POST', body: JSON.stringify({ user }) })).json()) as { token: string };
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    expect(res.status, `${method} ${path}`).toBe(200);
    return (await res.json()) as T;
  };
  const vault = await call<{ wrappedKey: string; salt: string; kdfParams: KdfParams; version: number }>('GET', '/v1/vault');
  const oldKey = await openEnvelope(PASSPHRASE, { wrappedKey: Buffer.from(vault.wrappedKey, 'base64url'), salt: Buffer.from(vault.salt, 'base64url'), kdfParams: vault.kdfParams });
  const { changes } = await call<{ changes: { recordId: string; version: number; deleted: boolean; ciphertext: string | null }[] }>('GET', '/v1/vault/changes');
  const next = await createEnvelope(PASSPHRASE);
  const records = [];
  for (const c of changes.filter((c) => !c.deleted)) {
    const bookmark = await decryptBookmark(oldKey, Buffer.from(c.ciphertext!, 'base64url'));
    records.push({ recordId: c.recordId, baseVersion: c.version, ciphertext: Buffer.from(await encryptBookmark(next.vaultKey, bookmark)).toString('base64url') });
  }
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
  await call('POST', '/v1/vault/rotate', { expectedVersion: vault.version, wrappedKey: b64(next.wrappedKey), salt: b64(next.salt), kdfParams: next.kdfParams, records });
}

test('a key rotation on another device locks the page (by its refused push, or by what it pulls), keeps its unsent edit, and it syncs under the new key', async () => {
  const a = await device();
  await unlock(a, 'carol');
  await a.fill('#url', 'https://example.org/kept');
  await a.fill('#title', 'Before rotation');
  await a.click('#add button');
  await a.locator('#status', { hasText: 'Synced.' }).waitFor();

  // A loses the server, and makes an edit it can't send.
  const isPush = (url: URL) => url.pathname === '/v1/vault/push';
  const isPull = (url: URL) => url.pathname === '/v1/vault/changes';
  await a.route(isPush, (route) => route.abort());
  await a.route(isPull, (route) => route.abort());
  await a.fill('#url', 'https://example.org/offline');
  await a.fill('#title', 'Made offline');
  await a.click('#add button');
  await a.locator('#status', { hasText: "can't be reached" }).waitFor();

  // Another device rotates the key. A's pushes get through again (its pulls still don't): the
  // push, made under key version 1, is refused as stale_key, and the page locks.
  await rotateKeyElsewhere('carol');
  await a.unroute(isPush);
  await a.locator('#status', { hasText: 'The vault key was changed on another device' }).waitFor();
  expect(await a.locator('#status').textContent()).toContain('1 unsynced change(s) are kept');
  expect(await a.locator('#vault').isHidden()).toBe(true);

  // Unlocked again (the passphrase opens the new envelope) and fully online: the kept edit goes
  // out under the new key, and both bookmarks show.
  await a.unroute(isPull);
  await a.fill('#passphrase', PASSPHRASE);
  await a.click('#unlock');
  await item(a, 'Before rotation').waitFor();
  await item(a, 'Made offline').waitFor();
  await a.locator('#status', { hasText: 'Synced.' }).waitFor();

  // A second rotation while A only pulls: the re-encrypted records don't decrypt, GET /v1/vault
  // shows key version 3, and the page locks again; the passphrase opens it under the new key.
  await rotateKeyElsewhere('carol');
  await a.locator('#status', { hasText: 'The vault key was changed on another device' }).waitFor();
  await a.fill('#passphrase', PASSPHRASE);
  await a.click('#unlock');
  await item(a, 'Made offline').waitFor();
  await a.locator('#status', { hasText: 'Synced.' }).waitFor();

  // A second device opens the vault under the newest key and sees both.
  const b = await device();
  await unlock(b, 'carol');
  await item(b, 'Made offline').waitFor();
  await item(b, 'Before rotation').waitFor();
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const { rows } = await client
    .query<{ key_version: number; live: number }>(`select v.key_version, (select count(*)::int from records r where r.vault_id = v.id and not r.deleted) as live from vaults v where v.user_id = 'dev:carol'`)
    .finally(() => client.end());
  expect(rows).toEqual([{ key_version: 3, live: 2 }]);
});
