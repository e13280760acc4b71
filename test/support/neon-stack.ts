/**
 * The Neon-shaped stack of scripts/neon-stack.sh, as the variables of `scripts/neon-stack.sh env`
 * describe it, for the tests that need a real TLS server. Tests that need it skip without it,
 * unless `VAULT_DB_REQUIRE_NEON_STACK=1` (set by CI on the stack's leg) makes its absence a failure.
 */
import path from 'node:path';

/** The stack's endpoints and files. */
export interface NeonStack {
  /** The stack's folder (logs, certificates). */
  dir: string;
  /** The CA certificate that signed the servers' certificates. */
  ca: string;
  /** PostgreSQL itself, as the owner, `sslmode=verify-full&sslrootcert=<ca>`. */
  direct: string;
  /** PgBouncer in transaction mode, as the owner, `sslmode=verify-full&sslrootcert=<ca>`. */
  pooled: string;
  /** A PgBouncer presenting an expired certificate from the same CA. */
  expired: string;
  /** A PgBouncer that offers no TLS. */
  plain: string;
  /** PostgreSQL under an address its certificate does not name. */
  wrongHost: string;
  /** PostgreSQL's log (every connection, with its TLS protocol). */
  postgresLog: string;
  /** PgBouncer's log (every client login, with its TLS protocol). */
  poolerLog: string;
}

/** The stack from the environment, or null when it is not up. */
export function neonStack(env: NodeJS.ProcessEnv = process.env): NeonStack | null {
  const { NEON_STACK_DIR: dir, NEON_STACK_CA: ca, DIRECT_URL_VERIFY_FULL: direct, DATABASE_URL_VERIFY_FULL: pooled } = env;
  const { NEON_STACK_EXPIRED_URL: expired, NEON_STACK_PLAIN_URL: plain, NEON_STACK_WRONG_HOST_URL: wrongHost } = env;
  if (!dir || !ca || !direct || !pooled || !expired || !plain || !wrongHost) {
    if (env.VAULT_DB_REQUIRE_NEON_STACK === '1') {
      throw new Error('VAULT_DB_REQUIRE_NEON_STACK=1, but the Neon-shaped stack is not in the environment: eval "$(scripts/neon-stack.sh env)"');
    }
    return null;
  }
  return { dir, ca, direct, pooled, expired, plain, wrongHost, postgresLog: path.join(dir, 'postgres.log'), poolerLog: path.join(dir, 'pgbouncer.log') };
}

/** `url` with other query parameters (others kept). */
export function withParams(url: string, params: Record<string, string | null>): string {
  const parsed = new URL(url);
  for (const [key, value] of Object.entries(params)) {
    if (value === null) parsed.searchParams.delete(key);
    else parsed.searchParams.set(key, value);
  }
  return parsed.toString();
}
