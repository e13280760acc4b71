/**
 * Signed identity claims: how a transaction proves to the database which user it acts for.
 *
 * Row-level security admits a row only when its `user_id` equals `vault_db_current_user()`. That
 * function returns the transaction's `app.user_id` only when `app.user_claim` is
 * `<expiry>.<hmac>`, where `hmac` is HMAC-SHA-256, under the key in `public.vault_db_claim_key`
 * (readable by the owner role only), of {@link claimMessage}, and the expiry is still ahead of the
 * transaction's start. A session that runs SQL as the application role without the key can set
 * `app.user_id` to anyone and still sees and writes no row. See migration Migration20261130210000
 * for the database half.
 *
 * @module
 */
import { createHmac } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { ConfigurationError } from '../errors.js';
import { runBound } from './bound-sql.js';

/** Length of the claim key: HMAC-SHA-256 with a 32-byte key (the database derives its pads from it). */
export const CLAIM_KEY_BYTES = 32;

/**
 * How long a claim is valid after it is made, in seconds. The database compares the expiry with
 * the transaction's start (`now()`), so a long transaction never expires halfway; the lifetime
 * only has to cover the gap between signing and `BEGIN`, plus clock skew between the two hosts.
 */
export const CLAIM_LIFETIME_SECONDS = 60;

/**
 * Binds the claim to its purpose (the domain tag, versioned), its expiry and the user. The user
 * id comes last and the expiry is digits only, so no two (expiry, user) pairs give one message.
 */
export function claimMessage(userId: string, expiresAt: number): string {
  return `vault-db/app.user_claim/v1:${expiresAt}:${userId}`;
}

/**
 * A claim for `userId` valid until `expiresAt` (Unix seconds): `<expiresAt>.<64 hex digits>`.
 *
 * @example
 * ```ts
 * const claim = signClaim(key, 'user_2x', Math.floor(Date.now() / 1000) + 60);
 * ```
 */
export function signClaim(key: Uint8Array, userId: string, expiresAt: number): string {
  const mac = createHmac('sha256', key).update(claimMessage(userId, expiresAt), 'utf8').digest('hex');
  return `${expiresAt}.${mac}`;
}

/**
 * The claim key as bytes, from a `Uint8Array` of 32 bytes or a string of 64 hex digits.
 *
 * @param source what to name in the error, e.g. `options.claimKey` or `VAULT_DB_CLAIM_KEY`
 * @throws ConfigurationError naming `source` and the rule; the message never contains the value
 */
export function parseClaimKey(value: unknown, source: string): Buffer {
  // The pattern and schema are built per call, not at import: a key is parsed once per service or
  // key reload, and a mutation run can only trace code that runs inside a test to that test (see
  // feed.ts).
  const hexKey = /^(?:\\x)?([0-9a-fA-F]{64})$/;
  const parsed = z
    .union([
      z.instanceof(Uint8Array).refine((bytes) => bytes.length === CLAIM_KEY_BYTES, (bytes) => ({ message: `must be ${CLAIM_KEY_BYTES} bytes, not ${bytes.length}` })),
      z.string().trim().regex(hexKey, `must be ${CLAIM_KEY_BYTES * 2} hex digits (optionally prefixed \\x, as psql prints a bytea)`),
    ])
    .safeParse(value);
  if (!parsed.success) {
    // Stryker disable next-line OptionalChaining,StringLiteral: a failed zod parse always has an issue with a message; the fallback only satisfies the type
    const rule = typeof value === 'string' || value instanceof Uint8Array ? (parsed.error.issues.at(-1)?.message ?? 'is malformed') : `must be a Uint8Array or a hex string, not ${value === null ? 'null' : typeof value}`;
    throw new ConfigurationError(`${source} ${rule}.`);
  }
  const key = parsed.data;
  // A copy: the caller may reuse its buffer.
  return typeof key === 'string' ? Buffer.from((hexKey.exec(key) as RegExpExecArray)[1] as string, 'hex') : Buffer.from(key);
}

/** Why the database refused the claim, when it did. */
export type ClaimRejection = { kind: 'key' } | { kind: 'clock'; skewSeconds: number };

/** What a service transaction presents to the database: the user, the claim signed for it, and the lock wait. */
export interface ClaimSession {
  userId: string;
  claim: string;
  lockTimeoutMs: number;
}

/**
 * A one-row subquery, `(verified, db_now)`, that sets `app.user_id`, `app.user_claim` and
 * `lock_timeout` for the transaction and then reads back whether the database accepts the claim.
 * Its three `?` placeholders take {@link claimBindings}.
 *
 * Both subqueries end in OFFSET 0, so the planner neither flattens them nor drops their volatile
 * columns: the settings are made first and the check sees them. A statement that reads rows under
 * row-level security after it must reach them only through `verified` (a LATERAL join on it), so
 * the rows' scans, and the policies' InitPlans calling `vault_db_current_user()`, run after this
 * row exists; the policies then see the settings this very statement made.
 *
 * A function, not a constant, for the same reason as the feed's statements (see `feed.ts`).
 */
export function claimSubquery(): string {
  return `(select public.vault_db_current_user() as verified, extract(epoch from now())::float8 as db_now
from (select set_config('app.user_id', ?, true), set_config('app.user_claim', ?, true), set_config('lock_timeout', ?, true) offset 0) as settings offset 0)`;
}

/** The bindings of {@link claimSubquery}, in order. */
export function claimBindings(session: ClaimSession): unknown[] {
  return [session.userId, session.claim, `${session.lockTimeoutMs}ms`];
}

/** The claim check's columns, as {@link claimSubquery} returns them. */
export interface ClaimCheck {
  verified: string | null;
  db_now: number;
}

/** Null when the database accepted the claim for `userId`, otherwise why it did not. */
export function claimRejection(row: ClaimCheck | undefined, userId: string): ClaimRejection | null {
  if (row?.verified === userId) return null;
  // The claim statements always yield a row; were one missing, its absent clock would have been
  // read as decades of skew, and the clocks blamed.
  if (!row) return { kind: 'key' };
  const skewSeconds = Math.round(row.db_now - Date.now() / 1000);
  // Half a claim's lifetime: the skew by which the two clocks may differ before a refused claim is
  // blamed on them rather than on the key.
  return Math.abs(skewSeconds) >= CLAIM_LIFETIME_SECONDS / 2 ? { kind: 'clock', skewSeconds } : { kind: 'key' };
}

/**
 * Thrown by a statement that presented the claim and found it refused. The service's transaction
 * turns it into the error the caller sees (and retries once with a key read again).
 */
export class ClaimRefusal extends Error {
  constructor(readonly rejection: ClaimRejection) {
    super(`the database refused the identity claim (${rejection.kind})`);
    this.name = 'ClaimRefusal';
  }
}

/**
 * Starts a service transaction with a statement of its own: sets `app.user_id`, `app.user_claim`
 * and `lock_timeout` for this transaction only, and reads back whether the database accepts the
 * claim. Push and pull don't use it: they present the claim in their first statement (see
 * {@link claimSubquery}), one round trip fewer.
 *
 * The statement binds its parameters (MikroORM would inline them into the SQL text), so the claim
 * never appears in `pg_stat_activity`, which other sessions of the same role can read, nor in
 * MikroORM's query log. It must run inside the transaction of `em`.
 *
 * @returns null when the database accepted the claim, otherwise why it did not
 */
export async function presentClaim(em: EntityManager, session: ClaimSession): Promise<ClaimRejection | null> {
  const { rows } = await runBound<ClaimCheck>(em, `select verified, db_now from ${claimSubquery()} as claimed`, claimBindings(session));
  return claimRejection(rows[0], session.userId);
}
