/**
 * Puts generated vaults into the database and takes them out again, with raw SQL on a pool of its
 * own, so seeding never warms or occupies the connections of the code being measured. Also
 * fingerprints a vault's final state, to check that the service and the baseline left the same rows.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { VaultSeed } from './workload.js';

/** A seeded vault. */
export interface SeededVault {
  userId: string;
  vaultId: string;
}

// Large enough to keep round trips few, small enough to keep one statement's parameters (hex
// text in node-pg's array encoding) in the low megabytes.
const CHUNK = 5000;

const KDF_PARAMS = { algorithm: 'PBKDF2-SHA256', iterations: 600_000, saltLength: 16 };

/**
 * Creates a vault for `userId` holding exactly `seed`'s rows (versions, tombstones, feed positions),
 * as if the service had written them.
 */
export async function seedVault(pool: pg.Pool, userId: string, seed: VaultSeed): Promise<SeededVault> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const { rows } = await client.query<{ id: string }>(
      'insert into vaults (user_id, wrapped_key, salt, kdf_params, last_seq) values ($1, $2, $3, $4, $5) returning id',
      [userId, randomBytes(60), randomBytes(16), JSON.stringify(KDF_PARAMS), seed.lastSeq],
    );
    const vaultId = (rows[0] as { id: string }).id;
    for (let start = 0; start < seed.records.length; start += CHUNK) {
      const chunk = seed.records.slice(start, start + CHUNK);
      await client.query(
        `insert into records (vault_id, user_id, record_id, ciphertext, version, deleted, seq)
         select $1, $2, t.record_id, t.ciphertext, t.version, t.deleted, t.seq
         from unnest($3::text[], $4::bytea[], $5::int[], $6::bool[], $7::bigint[]) as t(record_id, ciphertext, version, deleted, seq)`,
        [vaultId, userId, chunk.map((r) => r.recordId), chunk.map((r) => r.ciphertext), chunk.map((r) => r.version), chunk.map((r) => r.deleted), chunk.map((r) => r.seq)],
      );
    }
    await client.query('commit');
    return { userId, vaultId };
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/** A user id no other vault of this run has. */
export function benchUser(label: string): string {
  return `bench-${label}-${randomBytes(4).toString('hex')}`;
}

/**
 * Refreshes the planner's statistics. Seeding adds thousands of rows at once, faster than
 * autovacuum notices; without this the first repetitions would run on plans made for an empty table.
 */
export async function analyze(pool: pg.Pool): Promise<void> {
  await pool.query('analyze vaults, records');
}

/** Deletes vaults and (by the foreign key's cascade) their records. */
export async function dropVaults(pool: pg.Pool, vaults: SeededVault[]): Promise<void> {
  if (vaults.length > 0) await pool.query('delete from vaults where id = any($1::uuid[])', [vaults.map((v) => v.vaultId)]);
}

/**
 * Everything observable about a vault except ids and timestamps, as one hash: feed head, and each
 * record's id, version, tombstone flag, feed position and ciphertext. Computed by the server, so a
 * 50,000-record vault is compared without shipping it to Node.
 */
export async function vaultFingerprint(pool: pg.Pool, vaultId: string): Promise<string> {
  const { rows } = await pool.query<{ head: string; body: string | null; n: string }>(
    `select (select last_seq || '/' || purged_seq from vaults where id = $1) as head,
            count(*) as n,
            md5(string_agg(record_id || ':' || version || ':' || deleted || ':' || seq || ':' || md5(ciphertext), ',' order by record_id)) as body
     from records where vault_id = $1`,
    [vaultId],
  );
  const row = rows[0] as { head: string; body: string | null; n: string };
  return `${row.head} ${row.n} ${row.body ?? '-'}`;
}
