import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestOrm, type TestOrm } from './support/database.js';
import { Vault } from '../src/entities/index.js';
import { envelope } from './support/fixtures.js';

let db: TestOrm;
beforeAll(async () => { db = await createTestOrm(); });
afterAll(async () => { await db?.close(); });

test('a vault round-trips through the ORM', async () => {
  const em = db.orm.em.fork();
  const vault = new Vault('user_1', envelope());
  await em.persistAndFlush(vault);
  const loaded = await db.orm.em.fork().findOneOrFail(Vault, { userId: 'user_1' });
  expect(loaded.version).toBe(1);
  expect(loaded.wrappedKey.equals(vault.wrappedKey)).toBe(true);
});
