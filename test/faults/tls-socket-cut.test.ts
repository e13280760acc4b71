/**
 * Fault injection on encrypted connections: the socket of a TLS session is cut at random bytes of
 * pushes (in the middle of TLS records, too), between the ORM and the pooler. As on plain TCP, each
 * push applies completely or not at all, the caller gets a TransientError (never a raw TLS
 * error), the same push re-sent succeeds idempotently, and the pool recovers by itself.
 *
 * Runs where the test server speaks TLS (the Neon-shaped stack); socket-cut.test.ts covers the
 * chosen protocol points, which only a plaintext hop lets a proxy find.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { MikroORM } from '@mikro-orm/postgresql';
import type pg from 'pg';
import { createConfig } from '../../src/config.js';
import { tlsSettings } from '../../src/connection-options.js';
import { SyncService } from '../../src/sync/sync-service.js';
import type { Change } from '../../src/sync/types.js';
import { Rng } from '../../soak/random.js';
import { TcpProxy, type CutDirection } from '../../soak/tcp-proxy.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';
import { envelope } from '../support/fixtures.js';
import { appliedHow, expectIdempotentRetry, expectTransient, quietKnexLog, readVault, resend, settle, waitUntil } from './support.js';

const encrypted = tlsSettings(inject('pooledServerUrl')).sslmode !== 'disable';
const USER = 'tls_cut_user';

let db: TestDatabase;
let proxy: TcpProxy;
let orm: MikroORM;
let sync: SyncService;
let direct: pg.Pool;
/** Bytes, both ways, of a reference push on a warm connection. */
let pushBytes = 0;

beforeAll(async () => {
  if (!encrypted) return;
  db = await createTestDatabase();
  proxy = await TcpProxy.start(db.pooledUrl);
  orm = await MikroORM.init(createConfig(proxy.rewrite(db.pooledUrl), { pool: { min: 0, max: 1 }, driverOptions: { log: quietKnexLog } }));
  sync = new SyncService(orm.em);
  direct = testPool(db.url, 2);
  await sync.enableVault(USER, envelope());
  await sync.pull(USER, { limit: 1 });
  const before = proxy.stats;
  await sync.push(USER, { changes: [{ recordId: 'reference', baseVersion: 0, ciphertext: randomBytes(64) }] });
  const after = proxy.stats;
  pushBytes = after.bytesUp - before.bytesUp + (after.bytesDown - before.bytesDown);
});

/** True when no session on the test database is inside a transaction (PgBouncer has ended a cut one). */
async function settled(): Promise<boolean> {
  const { rows } = await direct.query<{ n: string }>(
    `select count(*) as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'`,
  );
  return rows[0]?.n === '0';
}

afterAll(async () => {
  await orm?.close(true);
  await proxy?.close();
  await direct?.end();
  await db?.drop();
});

test.skipIf(!encrypted)('a cut at a random byte of a TLS session, 12 times over: whole or nothing, TransientError, idempotent re-send', async () => {
  const rng = new Rng(11);
  const tally = { cut: 0, failed: 0 };
  for (let i = 0; i < 12; i++) {
    await sync.pull(USER, { limit: 1 }); // the pooled connection is open, its TLS handshake done
    const changes: Change[] = [{ recordId: `tls-${i}`, baseVersion: 0, ciphertext: randomBytes(64) }];
    const before = await readVault(direct, USER);
    const fired = proxy.cutAfter(rng.int(0, pushBytes), rng.pick<CutDirection>(['up', 'down', 'any']));
    const outcome = await settle(sync.push(USER, { changes }));
    proxy.disarm();
    if (await fired) tally.cut++;
    // PgBouncer ends the server side of a cut client's transaction; judge once it has.
    await waitUntil(settled);
    const how = appliedHow(before, await readVault(direct, USER), changes);
    if (outcome.ok) {
      expect(how).toBe('all');
    } else {
      tally.failed++;
      expectTransient(outcome.error);
    }
    expectIdempotentRetry(await resend(() => sync.push(USER, { changes })), changes);
  }
  expect(pushBytes).toBeGreaterThan(100);
  expect(tally.failed, JSON.stringify(tally)).toBeGreaterThan(3);
}, 60_000);

test.skipIf(!encrypted)('a cut during the TLS handshake of a new connection ends as TransientError, and the next call connects', async () => {
  // A fresh ORM without connections (connect: false), so the next call opens one and its
  // handshake crosses the armed cut: the SSLRequest (8 bytes) passes, the ClientHello does not.
  const fresh = await MikroORM.init(createConfig(proxy.rewrite(db.pooledUrl), { connect: false, pool: { min: 0, max: 1 }, driverOptions: { log: quietKnexLog } }));
  try {
    const freshSync = new SyncService(fresh.em);
    const fired = proxy.cutAfter(40, 'up');
    const outcome = await settle(freshSync.pull(USER, { limit: 1 }));
    expect(await fired).toBe(true);
    expect(outcome.ok, 'the call whose connection was cut in the handshake must fail').toBe(false);
    if (!outcome.ok) expectTransient(outcome.error);
    expect((await resend(() => freshSync.pull(USER, { limit: 1 }))).changes).toHaveLength(1);
  } finally {
    proxy.disarm();
    await fresh.close(true);
  }
});
