/**
 * Whether two URLs reach the same database. The host alone can't tell: Neon's pooled and direct
 * URLs have different host names for one database, and two host names may name one server. So
 * the servers are asked: the database's name and OID, and the moment the server started, which
 * together no two running servers share.
 *
 * @module
 */
import type { Queryable } from './catalog.js';

/** What identifies a database on a running server, as seen through one connection. */
export interface DatabaseIdentity {
  database: string;
  oid: string;
  /** `pg_postmaster_start_time()`, to the microsecond. */
  serverStarted: string;
}

/** Reads the identity of the database `db` is connected to. Needs no privilege. */
export async function databaseIdentity(db: Queryable): Promise<DatabaseIdentity> {
  const { rows } = await db.query<DatabaseIdentity>(
    `select pg_catalog.current_database() as database,
            (select d.oid::text from pg_catalog.pg_database d where d.datname = pg_catalog.current_database()) as oid,
            to_char(pg_catalog.pg_postmaster_start_time() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as "serverStarted"`,
  );
  const row = rows[0];
  if (!row) throw new Error('the server returned no identity row');
  return row;
}

/** True when two identities are the same database of the same running server. */
export function sameDatabase(a: DatabaseIdentity, b: DatabaseIdentity): boolean {
  return a.database === b.database && a.oid === b.oid && a.serverStarted === b.serverStarted;
}

/** host:port/database of a URL, for messages (no user, no password). */
export function describeLocation(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname || '/'}`;
  } catch {
    return '(unparseable URL)';
  }
}
