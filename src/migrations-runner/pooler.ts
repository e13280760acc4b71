/**
 * Refusing to migrate through a transaction-mode pooler (PgBouncer, Neon's `-pooler` endpoint).
 * There, consecutive transactions of one client run on whichever server session is free, so a
 * session advisory lock taken in one of them protects nothing in the next, and two deploys could
 * migrate at once.
 *
 * Two layers, because no single signal is reliable:
 * - a declaration: `pooled: true`, `DATABASE_URL_POOLED=1` when migrating through `DATABASE_URL`,
 *   or Neon's `-pooler` host name convention;
 * - a probe, needing no host name: take a throwaway session lock, then see whether a second
 *   client session can take it too (it can only if the pooler put it on the same server session)
 *   or whether the first session no longer holds it (its next statement ran on another one).
 *   After that, every migration transaction checks that its own backend holds the migration lock
 *   (see lock.ts), so a pooler the probe missed still can't commit a migration unlocked.
 *
 * @module
 */
import type { Knex } from '@mikro-orm/postgresql';
import { heldByThisBackend, randomProbeKey } from './lock.js';
import type { MigrationSession } from './session.js';

/** Why a URL is considered pooled, or null when nothing says so. */
export function pooledDeclaration(url: string, declared: boolean | undefined, env: NodeJS.ProcessEnv = process.env): string | null {
  if (declared === true) return 'declared pooled (pooled: true)';
  if (declared === false) return null;
  const flag = env.DATABASE_URL_POOLED?.trim().toLowerCase();
  // The declaration is about DATABASE_URL; DIRECT_URL, even if it is the same text, says "direct".
  if (flag && ['1', 'true', 'yes'].includes(flag) && env.DATABASE_URL?.trim() === url.trim() && env.DIRECT_URL?.trim() !== url.trim()) {
    return 'DATABASE_URL is declared pooled (DATABASE_URL_POOLED)';
  }
  try {
    const host = new URL(url).hostname;
    // Neon's convention: the pooled endpoint is the compute's host with "-pooler" after its id.
    if (/^[^.]+-pooler(\.|$)/i.test(host)) return `its host ${host} is a Neon pooler endpoint ("-pooler")`;
  } catch {
    // Not a URL we can read: let the connection attempt report it.
  }
  return null;
}

/**
 * Probes whether `session` talks to PostgreSQL through a transaction-mode pooler, using a second
 * session from `knex`'s pool (skipped when the pool allows only one connection). Returns the
 * evidence, or null when the session behaves like a direct one.
 */
export async function probeForPooler(session: MigrationSession, knex: Knex, poolMax: number): Promise<string | null> {
  const probe = randomProbeKey();
  const [taken] = await session.query<{ ok: boolean }>('select pg_catalog.pg_try_advisory_lock($1::int8) as ok', [probe]);
  if (!taken?.ok) return null; // a random key nobody holds: can't happen on a working server
  try {
    if (poolMax >= 2) {
      // On a direct server this is another session, which can't take a lock the first one holds.
      const { rows } = (await knex.raw('select pg_catalog.pg_try_advisory_lock(?::int8) as ok', [probe])) as { rows: { ok: boolean }[] };
      if (rows[0]?.ok) {
        await knex.raw('select pg_catalog.pg_advisory_unlock(?::int8)', [probe]).catch(() => {});
        return 'a second connection ran on the same server session as the first';
      }
    }
    const [held] = await session.query<{ held: boolean }>(`select ${heldByThisBackend('$1')} as held`, [probe]);
    if (!held?.held) return 'a session lock taken by one statement was gone in the next';
    return null;
  } finally {
    await session.query('select pg_catalog.pg_advisory_unlock($1::int8)', [probe]).catch(() => {});
  }
}
