/**
 * The bookmark page in a real browser (playwright-core driving Debian's Chromium), against the real
 * `npm run serve` process in dev mode on a test database: two browser contexts are two devices of
 * one user. Create in one, see it in the other; a concurrent edit ends merged; a delete propagates;
 * a reload keeps the vault locked until the passphrase is entered; the database holds only
 * ciphertext.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import pg from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createTestDatabase, type TestDatabase } from '../test/support/database.js';

const ROOT = resolve(import.meta.dirname, '..');
const PASSPHRASE = 'correct horse battery staple';
let db: TestDatabase;
let server: ChildProcess;
let browser: Browser;
let base = '';
let output = '';

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
  server = spawn(process.execPath, ['--import', 'tsx', 'src/http/serve.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: db.url, PORT: '0', HOST: '127.0.0.1', DIRECT_URL: '', AUTH_JWKS_URL: '', AUTH_ISSUER: '', AUTH_AUDIENCE: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  for (;;) {
    const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
    if (m) {
      base = m[1]!;
      break;
    }
    if (server.exitCode !== null) throw new Error(`serve exited: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(output).toContain('the bookmark page at /');
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  if (server && server.exitCode === null) server.kill('SIGTERM');
  await new Promise((r) => (server?.exitCode === null ? server.once('exit', r) : r(undefined)));
  await db?.drop();
});

async function device(): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(base);
  return page;
}

async function unlock(page: Page): Promise<void> {
  await page.fill('#user', 'alice');
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
