/**
 * What a TLS or certificate failure of a database connection means and how to fix it, in words a
 * user can act on. Used by the one-line connection errors of `checkDatabaseReachable` and by the
 * sync service, which turns such a failure of a call into a `ConfigurationError` (a retry can't
 * help: the URL or the server must change).
 *
 * @module
 */

/** The fix for a server that refuses unencrypted connections. */
const requiresTls = 'accepts only encrypted connections: add sslmode=verify-full (with sslrootcert=<CA file> for a private CA) or sslmode=require to the URL.';

/** Node's codes for a certificate chain that ends at a CA this process does not trust. */
const UNTRUSTED_CA = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * What a TLS or certificate failure means and how to fix it, or undefined when `error` is none.
 * Shared by the one-line connection errors and by the sync service, which turns such a failure of
 * a call into a `ConfigurationError` instead of a raw driver error.
 */
export function explainTlsFailure(error: unknown): string | undefined {
  const e = (error ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : '';
  if (code && UNTRUSTED_CA.has(code)) {
    return 'presented a certificate signed by a CA this process does not trust: add sslrootcert=<path of the CA certificate> to the URL (for a public CA, check that the server sends its whole chain).';
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `presented a certificate for another host name (${message.replace(/^Hostname\/IP does not match certificate's altnames: /, '')}): connect with a host name the certificate names.`;
  }
  if (code === 'CERT_HAS_EXPIRED') return 'presented an expired certificate: the server needs a renewed certificate (and check this machine\'s clock).';
  if (code === 'CERT_NOT_YET_VALID') return 'presented a certificate that is not valid yet: check this machine\'s clock.';
  // node-pg's answer to a server that declined TLS: no fallback to plain TCP, ever.
  if (/does not support SSL/i.test(message)) {
    return 'does not offer TLS, but the URL asks for it; vault-db never falls back to an unencrypted connection. Enable TLS on the server, or use sslmode=disable for a server on this machine.';
  }
  // PgBouncer with client_tls_sslmode=require (as Neon's pooler) answers a plain connection so,
  // and pg_hba.conf's hostssl-only rules with "no encryption" (SQLSTATE 28000).
  if (/SSL required/i.test(message) || (code === '28000' && /no encryption/i.test(message))) return requiresTls;
  return undefined;
}
