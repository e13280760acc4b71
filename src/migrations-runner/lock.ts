/**
 * The migration lock: a session-level PostgreSQL advisory lock taken on the very connection that
 * runs the migrations. Holding it there (rather than on a side session) means the lock can't be
 * lost while the migrations go on: if that session dies, so does the migration transaction.
 *
 * Every migration transaction still checks, in SQL, that its own backend holds the lock, and the
 * journal row is written only when it does. That is what makes the runner fail closed behind a
 * transaction-mode pooler, where consecutive transactions of one client land on different server
 * sessions and a session lock protects nothing.
 *
 * @module
 */

/** Key of the advisory lock held while migrating: the first 8 bytes of sha256('vault-db:migrations'). */
export const MIGRATION_LOCK_KEY = '1452837154174613557';

/**
 * SQL that is true when the backend running it holds the session advisory lock `$<n>` (a bigint
 * key) in the current database. A bigint key is stored as classid (high 32 bits), objid (low 32
 * bits) and objsubid 1.
 */
export function heldByThisBackend(param: string): string {
  return `exists (select 1 from pg_catalog.pg_locks l
     where l.locktype = 'advisory' and l.granted and l.pid = pg_catalog.pg_backend_pid()
       and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = pg_catalog.current_database())
       and l.objsubid = 1 and ((l.classid::int8 << 32) | l.objid::int8) = ${param}::int8)`;
}

/** A random positive bigint key for a probe lock that no other process will ever wait on. */
export function randomProbeKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive, so the classid/objid arithmetic above holds
  return BigInt(`0x${Buffer.from(bytes).toString('hex')}`).toString();
}
