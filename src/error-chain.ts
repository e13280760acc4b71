/**
 * Walking an error's `cause` chain: MikroORM wraps knex's error, which wraps node-pg's, and the
 * SQLSTATE or network code that says what happened may sit on any of them.
 *
 * @module
 */

/** How many errors of a chain are looked at; a cycle of causes ends there too. */
const MAX_CHAIN = 8;

/** `error` and its causes, outermost first: at most {@link MAX_CHAIN}, ending at the first missing one. */
export function causeChain(error: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = error; e !== undefined && e !== null && out.length < MAX_CHAIN; e = (e as { cause?: unknown }).cause) out.push(e);
  return out;
}

/**
 * Whether `code` is a PostgreSQL SQLSTATE: five digits or capital letters. No SQLSTATE class
 * starts with E, which keeps out Node's errno names of the same shape (EPIPE, EPERM, EBUSY).
 */
export function isSqlState(code: unknown): code is string {
  return typeof code === 'string' && /^[0-9A-DF-Z][0-9A-Z]{4}$/.test(code);
}

/** The first SQLSTATE in `error`'s cause chain (MikroORM copies the driver's `code` onto its own exceptions). */
export function sqlStateOf(error: unknown): string | undefined {
  return causeChain(error).map((e) => (e as { code?: unknown }).code).find(isSqlState);
}
