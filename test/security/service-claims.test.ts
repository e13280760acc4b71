/**
 * How SyncService gets its claim key and what happens when it has the wrong one: as the
 * application role, no key or a wrong key makes every call fail with ConfigurationError (and
 * write nothing) rather than run on an empty view of the vault; as the owner, the key is read
 * from the database, and again after a rotation. The claim itself never reaches
 * `pg_stat_activity`, where other sessions of the same role could copy it.
 */
import { randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { pgConnectionConfig } from '../../src/connection-options.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createConfig } from '../../src/config.js';
import { ConfigurationError, VaultDbError } from '../../src/errors.js';
import { CLAIM_KEY_ENV, rotateClaimKey } from '../../src/sync/claim-key.js';
import { SyncService } from '../../src/sync/sync-service.js';
import type { SyncServiceOptions } from '../../src/sync/types.js';
import { createAppRole, type AppRole } from '../support/app-role.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';
import { envelope } from '../support/fixtures.js';
import { rejectionOf } from '../support/rejection.js';

const A = `alice_${randomBytes(4).toString('hex')}`;

let db: TestDatabase;
let role: AppRole;
let appOrm: MikroORM;
let ownerOrm: MikroORM;
let owner: pg.Pool;
const savedEnv = process.env[CLAIM_KEY_ENV];

/** Every row of both tables and the key, as text: the state a refused call must leave alone. */
async function snapshot(): Promise<string[]> {
  const { rows } = await owner.query<{ t: string }>(
    `select 'v ' || t::text as t from vaults t union all select 'r ' || t::text from records t
     union all select 'k ' || t::text from vault_db_claim_key t order by 1`,
  );
  return rows.map((r) => r.t);
}

/** Every public method of the service, each for user A, each expected to need the database. */
function everyCall(sync: SyncService): [string, () => Promise<unknown>][] {
  return [
    ['enableVault', () => sync.enableVault(`${A}_new`, envelope())],
    ['getVault', () => sync.getVault(A)],
    ['push', () => sync.push(A, { changes: [{ recordId: 'planted', baseVersion: 0, ciphertext: randomBytes(16) }] })],
    ['pull', () => sync.pull(A, {})],
    ['rewrapKey', () => sync.rewrapKey(A, { expectedVersion: 1, ...envelope() })],
    ['rotateKey', () => sync.rotateKey(A, { expectedVersion: 1, ...envelope(), records: [] })],
    ['disableVault', () => sync.disableVault(A)],
    ['purgeTombstones', () => sync.purgeTombstones({ olderThan: new Date(Date.now() + 60_000), userId: A })],
  ];
}

const appService = (options: SyncServiceOptions = {}) => new SyncService(appOrm.em, { lockTimeoutMs: 10_000, ...options });

beforeAll(async () => {
  delete process.env[CLAIM_KEY_ENV];
  db = await createTestDatabase();
  role = await createAppRole(db);
  appOrm = await MikroORM.init(createConfig(role.url, { pool: { min: 0, max: 4 } }));
  ownerOrm = await MikroORM.init(createConfig(db.url, { pool: { min: 0, max: 2 } }));
  owner = testPool(db.url, 3);
  const sync = appService({ claimKey: role.claimKey });
  await sync.enableVault(A, envelope());
  await sync.push(A, { changes: [{ recordId: 'r1', baseVersion: 0, ciphertext: randomBytes(16) }] });
});

afterEach(() => {
  delete process.env[CLAIM_KEY_ENV];
  vi.restoreAllMocks();
});

afterAll(async () => {
  if (savedEnv === undefined) delete process.env[CLAIM_KEY_ENV];
  else process.env[CLAIM_KEY_ENV] = savedEnv;
  await appOrm?.close(true);
  await ownerOrm?.close(true);
  await owner?.end();
  await role?.drop();
  await db?.drop();
});

describe('as the application role', () => {
  it('without a key (no option, no VAULT_DB_CLAIM_KEY), every call fails with a ConfigurationError that says how to get one, and writes nothing', async () => {
    const before = await snapshot();
    const sync = appService();
    for (const [name, call] of everyCall(sync)) {
      const error = await rejectionOf(call());
      expect({ name, error }).toEqual({ name, error: expect.any(ConfigurationError) });
      const message = (error as Error).message;
      expect(message).toContain('VAULT_DB_CLAIM_KEY');
      expect(message).toContain("select encode(key, 'hex') from public.vault_db_claim_key");
      expect(message.split('\n')).toHaveLength(1);
    }
    expect(await snapshot()).toEqual(before);
  });

  it("with another database's key, every call fails with a ConfigurationError naming the key's origin, and writes nothing", async () => {
    const before = await snapshot();
    const wrong = randomBytes(32);
    for (const sync of [appService({ claimKey: wrong }), appService({ claimKey: wrong.toString('hex') })]) {
      for (const [name, call] of everyCall(sync)) {
        const error = await rejectionOf(call());
        expect({ name, error }).toEqual({ name, error: expect.any(ConfigurationError) });
        expect((error as Error).message).toMatch(/the claim key from options\.claimKey is not the database's/);
        expect((error as Error).message).not.toContain(wrong.toString('hex'));
      }
    }
    process.env[CLAIM_KEY_ENV] = wrong.toString('hex');
    expect((await rejectionOf(appService().getVault(A)) as Error).message).toMatch(/the claim key from VAULT_DB_CLAIM_KEY is not the database's/);
    expect(await snapshot()).toEqual(before);
  });

  it('takes the key as bytes, as hex (also \\x-prefixed, as psql prints it) or from VAULT_DB_CLAIM_KEY; the option wins over the variable', async () => {
    const hex = role.claimKey.toString('hex');
    for (const claimKey of [role.claimKey, new Uint8Array(role.claimKey), hex, hex.toUpperCase(), `\\x${hex}`]) {
      expect((await appService({ claimKey }).getVault(A))?.userId).toBe(A);
    }
    process.env[CLAIM_KEY_ENV] = hex;
    expect((await appService().getVault(A))?.userId).toBe(A);
    process.env[CLAIM_KEY_ENV] = randomBytes(32).toString('hex');
    expect((await appService({ claimKey: role.claimKey }).getVault(A))?.userId).toBe(A);
  });

  it('the service copies the key: changing the caller\'s buffer afterwards changes nothing', async () => {
    const buffer = Buffer.from(role.claimKey);
    const sync = appService({ claimKey: buffer });
    buffer.fill(0);
    expect((await sync.getVault(A))?.userId).toBe(A);
  });

  it('a malformed key fails at construction with a ConfigurationError naming where it came from, never echoing it', () => {
    const cases: [unknown, RegExp][] = [
      [randomBytes(31), /options\.claimKey must be 32 bytes, not 31/],
      ['ab'.repeat(31), /options\.claimKey must be 64 hex digits/],
      [`${'zz'.repeat(32)}`, /options\.claimKey must be 64 hex digits/],
      [42, /options\.claimKey must be a Uint8Array or a hex string, not number/],
      [null, /options\.claimKey must be a Uint8Array or a hex string, not null/],
    ];
    for (const [claimKey, rule] of cases) {
      let error: unknown;
      try {
        appService({ claimKey: claimKey as string });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(rule);
      if (typeof claimKey === 'string') expect((error as Error).message).not.toContain(claimKey);
    }
    process.env[CLAIM_KEY_ENV] = 'not-a-key';
    expect(() => appService()).toThrow(/VAULT_DB_CLAIM_KEY must be 64 hex digits/);
  });

  it("with this host's clock two minutes behind the database's, calls fail with a ConfigurationError about the clocks", async () => {
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 120_000);
    const error = await rejectionOf(appService({ claimKey: role.claimKey }).getVault(A));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/its clock is 1\d\d s ahead of this host's/);
  });

  it('the claim and the user id never appear in the query text other sessions of the role can read (pg_stat_activity)', async () => {
    // Hold the key table, so the service's first statement (which checks the claim) waits where
    // an observer can see it.
    const blocker = await owner.connect();
    const observer = new pg.Client(pgConnectionConfig(role.url));
    observer.on('error', () => {});
    await observer.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table vault_db_claim_key in access exclusive mode');
      const call = appService({ claimKey: role.claimKey }).getVault(A);
      let seen: { query: string }[] = [];
      for (let i = 0; i < 200 && seen.length === 0; i++) {
        seen = (await observer.query<{ query: string }>(
          `select query from pg_stat_activity where usename = current_user and pid <> pg_backend_pid() and wait_event_type = 'Lock'`,
        )).rows;
        if (seen.length === 0) await new Promise((r) => setTimeout(r, 25));
      }
      await blocker.query('commit');
      expect((await call)?.userId).toBe(A);
      expect(seen).toHaveLength(1);
      const text = (seen[0] as { query: string }).query;
      // The observer does see the statement, just not its values.
      expect(text).toContain("set_config('app.user_claim', $2, true)");
      expect(text).not.toMatch(/\d+\.[0-9a-f]{64}/);
      expect(text).not.toContain(A);
    } finally {
      await blocker.query('rollback').catch(() => {});
      blocker.release();
      await observer.end().catch(() => {});
    }
  });
});

describe('as the owner', () => {
  it('reads the key from the database, and again by itself after a rotation', async () => {
    const sync = new SyncService(ownerOrm.em);
    expect((await sync.getVault(A))?.userId).toBe(A);
    const configured = appService({ claimKey: role.claimKey });
    expect((await configured.getVault(A))?.userId).toBe(A);

    const fresh = await rotateClaimKey(ownerOrm.em);
    try {
      // The owner's service holds the old key, is refused once, re-reads and goes on.
      expect((await sync.getVault(A))?.userId).toBe(A);
      expect((await sync.push(A, { changes: [{ recordId: 'after-rotation', baseVersion: 0, ciphertext: randomBytes(16) }] })).applied).toHaveLength(1);
      // A service configured with the old key is refused until it gets the new one.
      expect(await rejectionOf(configured.getVault(A))).toBeInstanceOf(ConfigurationError);
      expect((await appService({ claimKey: fresh }).getVault(A))?.userId).toBe(A);
    } finally {
      await owner.query('select vault_db_set_claim_key($1)', [role.claimKey]);
    }
  });

  it("with the clocks apart, a service reading its key from the database re-reads it once, then fails about the clocks (it never retries for ever)", { timeout: 30_000 }, async () => {
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 120_000);
    const error = await rejectionOf(new SyncService(ownerOrm.em).getVault(A));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/its clock is 1\d\d s ahead of this host's.*check the claim key from the database/);
  });

  it('every failure is a VaultDbError: a missing key table is a ConfigurationError that says to migrate', async () => {
    const scratch = await createTestDatabase();
    const orm = await MikroORM.init(createConfig(scratch.url, { pool: { min: 0, max: 1 } }));
    try {
      await orm.em.getConnection().execute('drop table vault_db_claim_key cascade');
      const error = await rejectionOf(new SyncService(orm.em).getVault(A));
      expect(error).toBeInstanceOf(VaultDbError);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(/run the migrations/);
    } finally {
      await orm.close(true);
      await scratch.drop();
    }
  });
});
