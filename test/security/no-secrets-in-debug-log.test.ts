/**
 * With MikroORM's `debug: true`, every statement is logged with its parameters inlined. The log
 * must still hold no ciphertext, wrapped key or salt (src/log-redaction.ts): this runs every call
 * of the service that carries them (enable, pushes of one and of several changes, deletes, pull,
 * rewrap, rotate, disable) and a statement that fails, captures every log line, and searches them
 * for each secret in hex, base64 and raw form. It also checks the log is really there, so a logger
 * that printed nothing could not pass.
 */
import { ref } from '@mikro-orm/core';
import { DefaultLogger, MikroORM, type LoggerOptions } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createConfig } from '../../src/config.js';
import { Vault } from '../../src/entities/vault.js';
import { VaultRecord } from '../../src/entities/vault-record.js';
import type { KdfParams } from '../../src/envelope.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { findNeedles, needlesOf, secret } from '../support/secret-needles.js';

const KDF: KdfParams = { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 };
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** Runs every service call that carries a secret through `orm`; returns the needles of every secret it sent. */
async function exercise(orm: MikroORM, user: string): Promise<Record<string, string>> {
  const sync = new SyncService(orm.em);
  const needles: Record<string, string> = {};
  const keep = (name: string, bytes: Buffer) => {
    Object.assign(needles, needlesOf(name, bytes));
    return bytes;
  };
  const envelope = (n: number) => ({ wrappedKey: keep(`wrapped key ${n}`, secret(`WK${n}`, 60)), salt: keep(`salt ${n}`, secret(`SALT${n}`, 16)), kdfParams: KDF });
  const ct = (name: string) => keep(`ciphertext ${name}`, secret(`CT-${name}`, 48));

  await sync.enableVault(user, { ...envelope(1), deviceFingerprint: 'laptop' });
  await sync.push(user, { changes: [{ recordId: 'one', baseVersion: 0, ciphertext: ct('create one') }] });
  await sync.push(user, { changes: [{ recordId: 'one', baseVersion: 1, ciphertext: ct('update one') }] });
  await sync.push(user, { changes: ['a', 'b', 'c'].map((id) => ({ recordId: id, baseVersion: 0, ciphertext: ct(`create ${id}`) })) });
  await sync.push(user, { changes: ['a', 'b'].map((id) => ({ recordId: id, baseVersion: 1, ciphertext: ct(`update ${id}`) })) });
  await sync.push(user, { changes: [{ recordId: 'c', baseVersion: 1, deleted: true }] });
  expect((await sync.pull(user, {})).changes).toHaveLength(4);
  await sync.rewrapKey(user, { expectedVersion: 1, ...envelope(2) });
  await sync.rotateKey(user, {
    expectedVersion: 2,
    ...envelope(3),
    records: [
      { recordId: 'one', baseVersion: 2, ciphertext: ct('rotate one') },
      { recordId: 'a', baseVersion: 2, ciphertext: ct('rotate a') },
      { recordId: 'b', baseVersion: 2, ciphertext: ct('rotate b') },
    ],
  });
  // A statement that fails is logged too (at error level): a second vault for the same user.
  const failing = new Vault(user, envelope(4));
  await expect(orm.em.fork().persistAndFlush(failing)).rejects.toThrow();
  // A record written through the unit of work directly, outside the service.
  const em = orm.em.fork();
  const vault = await em.findOneOrFail(Vault, { userId: user });
  em.persist(new VaultRecord(ref(vault), user, 'direct', ct('direct'), 1_000_000));
  await em.flush();
  await sync.disableVault(user);
  return needles;
}

describe('MikroORM debug log', () => {
  test('debug: true logs every statement, with no ciphertext, wrapped key or salt in any line', async () => {
    const lines: string[] = [];
    const orm = await MikroORM.init(createConfig(db.url, { debug: true, logger: (line) => lines.push(line) }));
    let needles: Record<string, string>;
    try {
      needles = await exercise(orm, 'debug-user');
    } finally {
      await orm.close(true);
    }
    // The log is really there, with the parameters inlined and the binary ones redacted.
    const log = lines.join('\n');
    expect(log).toMatch(/insert into "vaults" .*<bytea 60 bytes>, <bytea 16 bytes>/);
    expect(log).toMatch(/update "vaults" set "wrapped_key" = <bytea 60 bytes>, "salt" = <bytea 16 bytes>/);
    expect(log).toMatch(/update "records" set "ciphertext" = <bytea 48 bytes>/);
    expect(log).toContain("'debug-user'");
    expect(findNeedles(lines, needles)).toEqual([]);
  });

  test("an application's own loggerFactory is wrapped: it gets the redacted lines and parameters", async () => {
    const lines: string[] = [];
    const params: unknown[] = [];
    class Recording extends DefaultLogger {
      override logQuery(context: Parameters<DefaultLogger['logQuery']>[0]): void {
        params.push(...(context.params ?? []));
        super.logQuery(context);
      }
    }
    const orm = await MikroORM.init(
      createConfig(db.url, { debug: true, loggerFactory: (options: LoggerOptions) => new Recording({ ...options, writer: (line) => lines.push(line) }) }),
    );
    let needles: Record<string, string>;
    try {
      needles = await exercise(orm, 'factory-user');
    } finally {
      await orm.close(true);
    }
    expect(lines.some((l) => l.includes('<bytea 60 bytes>'))).toBe(true);
    expect(findNeedles(lines, needles)).toEqual([]);
    // Parameters reach a custom logger as descriptions, never as the bytes.
    expect(params.some((p) => Buffer.isBuffer(p) || p instanceof Uint8Array)).toBe(false);
    expect(params).toContain('<bytea 60 bytes>');
  });
});
