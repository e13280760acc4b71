/**
 * Malformed input thrown at every public SyncService method with fast-check. The rule for every
 * generated call:
 *
 * - when the input is invalid (by the independent oracles below, written from the documented
 *   rules, not from src/sync/input.ts), the call fails with one of the package's own errors for
 *   bad input (`VaultDbError`, and not `DatabaseError`/`TransientError`/`ConfigurationError`, which
 *   would mean a driver failure got through validation), and a digest of every table, taken with
 *   the owner's pool before and after, shows the database unchanged;
 * - when the input is valid, the call succeeds (and what it stored reads back exactly).
 *
 * The seed is fixed ({@link DEFAULT_SEED}) and printed, so every run (and every mutant of a
 * mutation run) meets the same inputs: a mutant is killed or not, never by chance. Fuzz with
 * another seed, or replay the one a failure prints: `FC_SEED=<seed> npx vitest run test/security/fuzz.test.ts`.
 * `FC_RUNS` (alias `FUZZ_RUNS`) multiplies the number of runs per property (default 1 = the CI
 * size), for a longer nightly fuzz: `FC_RUNS=20 FC_SEED=$RANDOM npx vitest run test/security/fuzz.test.ts`.
 */
import { randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/postgresql';
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConfig } from '../../src/config.js';
import { ConfigurationError, DatabaseError, TransientError, VaultDbError } from '../../src/errors.js';
import { SyncService } from '../../src/sync/sync-service.js';
import { DEFAULT_LIMITS } from '../../src/sync/types.js';
import { ormLoginFor } from '../support/app-role.js';
import { createTestDatabase, type TestDatabase, testPool } from '../support/database.js';
import { argon2id, envelope, pbkdf2 } from '../support/fixtures.js';

/** The seed CI fuzzes with; `FC_SEED` overrides it. */
const DEFAULT_SEED = 20_261_130;

/** An integer from the environment variable `name`, or `fallback` when it is unset; anything else stops the run. */
function intFromEnv(name: string, fallback: number, min: number): number {
  const text = process.env[name]?.trim();
  if (!text) return fallback;
  const value = Number(text);
  // A typo must not silently fuzz with a default the caller did not ask for.
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, not "${text}"`);
  return value;
}

const SEED = intFromEnv('FC_SEED', DEFAULT_SEED, -(2 ** 31));
const SCALE = intFromEnv('FC_RUNS', intFromEnv('FUZZ_RUNS', 1, 1), 1);
console.log(`fuzz: seed ${SEED}${SEED === DEFAULT_SEED ? ' (the fixed CI seed; FC_SEED=<n> for another)' : ' (from FC_SEED)'}, runs x${SCALE} (FC_RUNS=<n> for more)`);
const runs = <T>(n: number): fc.Parameters<T> => ({ numRuns: Math.max(1, Math.round(n * SCALE)), seed: SEED });
/** Per-property time limit: vitest's 60 s, scaled with FC_RUNS. */
const TIMEOUT = 60_000 * Math.max(1, SCALE);
const MAX_INT4 = 2_147_483_647;
const L = DEFAULT_LIMITS;

// ---------------------------------------------------------------------------------------------
// Oracles: what the documented rules accept (README / types.ts / envelope.ts bounds)
// ---------------------------------------------------------------------------------------------

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const cleanText = (s: string): boolean => !s.includes('\u0000') && !LONE_SURROGATE.test(s);
const isInt = (v: unknown, lo: number, hi: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const isRecordLike = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !(v instanceof Map) && !(v instanceof Set);

const okUserId = (u: unknown): u is string => typeof u === 'string' && u.length >= 1 && u.length <= 255 && cleanText(u);
const okRecordId = (r: unknown): r is string => typeof r === 'string' && [...r].length >= 1 && [...r].length <= L.maxRecordIdLength && cleanText(r);
const okVersion = (v: unknown): boolean => isInt(v, 0, MAX_INT4);
const okBytes = (b: unknown, lo: number, hi: number): b is Uint8Array => b instanceof Uint8Array && b.length >= lo && b.length <= hi;

function okKdf(k: unknown): k is { saltLength: number } {
  if (!isRecordLike(k)) return false;
  const keys = Object.keys(k).sort().join(',');
  // 'PBKDF2' is the ticket's name; 'PBKDF2-SHA256' its deprecated alias, with the same rules.
  if (k.algorithm === 'PBKDF2' || k.algorithm === 'PBKDF2-SHA256') {
    return keys === 'algorithm,iterations,saltLength' && isInt(k.iterations, 600_000, 2_000_000) && isInt(k.saltLength, 16, 64);
  }
  if (k.algorithm === 'Argon2id') {
    return keys === 'algorithm,iterations,memoryMiB,parallelism,saltLength'
      && isInt(k.memoryMiB, 15, 1024) && isInt(k.iterations, 2, 10) && isInt(k.parallelism, 1, 16) && isInt(k.saltLength, 16, 64);
  }
  return false;
}

function okEnvelope(x: unknown): boolean {
  if (typeof x !== 'object' || x === null) return false;
  const { wrappedKey, salt, kdfParams } = x as Record<string, unknown>;
  return okBytes(wrappedKey, 32, 512) && okBytes(salt, 16, 64) && okKdf(kdfParams) && salt.length === kdfParams.saltLength;
}

function okFingerprint(f: unknown): boolean {
  return f === undefined || f === null || (typeof f === 'string' && f.length <= 255 && cleanText(f));
}

/** A change as `push` documents it; `undefined` when it is invalid, else its record id. */
function okChange(c: unknown): string | undefined {
  if (typeof c !== 'object' || c === null) return undefined;
  const { recordId, baseVersion, ciphertext, deleted } = c as Record<string, unknown>;
  if (!okRecordId(recordId) || !okVersion(baseVersion)) return undefined;
  if (deleted === true) return ciphertext === undefined ? recordId : undefined;
  if (deleted !== undefined && deleted !== false) return undefined;
  return okBytes(ciphertext, 1, L.maxRecordBytes) ? recordId : undefined;
}

/** The head of a vault, read by the owner right before a call. */
interface Head { id: string; lastSeq: number; purgedSeq: number }

/**
 * Whether `cursor` may be continued on the vault `head`: format `v2.<vault uuid>.<seq>.<horizon>`
 * (or `v1.<vault uuid>.<seq>`, horizon 0), base64url; not ahead of the head; not purged past (the
 * purge horizon may not lie above both the position and the cursor's horizon); and a push needs a
 * cursor once the vault has purged deletions.
 */
function okCursor(cursor: unknown, head: Head | null, forPull: boolean): boolean {
  if (cursor === undefined || cursor === null) return forPull || head === null || head.purgedSeq === 0;
  if (typeof cursor !== 'string' || head === null) return false;
  if (cursor.length > 128 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return false;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^v1\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{1,15})$/.exec(text)
    ?? /^v2\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{1,15})\.(\d{1,15})$/.exec(text);
  if (!m || m[1] !== head.id) return false;
  const seq = Number(m[2]);
  const horizon = Number(m[3] ?? 0);
  return seq <= head.lastSeq && horizon <= head.lastSeq && head.purgedSeq <= Math.max(seq, horizon);
}

function okPushShape(input: unknown): boolean {
  if (typeof input !== 'object' || input === null) return false;
  const { changes, atomic, cursor } = input as Record<string, unknown>;
  if (atomic !== undefined && typeof atomic !== 'boolean') return false;
  if (cursor !== undefined && cursor !== null && typeof cursor !== 'string') return false;
  if (!Array.isArray(changes) || changes.length > L.maxChanges) return false;
  const ids = new Set<string>();
  for (let i = 0; i < changes.length; i++) {
    const id = okChange(changes[i]);
    if (id === undefined || ids.has(id)) return false;
    ids.add(id);
  }
  return true;
}

function okPullShape(input: unknown): boolean {
  if (input === undefined || input === null) return true;
  // A pull input is any object (its absent fields take their defaults).
  if (typeof input !== 'object') return false;
  const { cursor, limit, maxBytes } = input as Record<string, unknown>;
  if (cursor !== undefined && cursor !== null && typeof cursor !== 'string') return false;
  return (limit === undefined || isInt(limit, 1, L.maxPullLimit)) && (maxBytes === undefined || isInt(maxBytes, 1, L.maxPullBytes));
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/** Values of the wrong type for almost any field. */
const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(undefined, null, true, false, Symbol('s'), () => 1, new Map([[1, 2]]), new Set([1]), new Date(0), /re/, new ArrayBuffer(8), Object.create(null)),
  fc.string({ maxLength: 8 }),
  fc.bigInt(),
  fc.array(fc.integer(), { maxLength: 4 }),
  fc.object({ maxDepth: 1 }),
  fc.constant(new String('boxed')),
  fc.constant(new Number(3)),
);

/** Numbers no version, count or limit may be. */
const weirdNumber = fc.constantFrom(
  NaN, Infinity, -Infinity, -1, -0.5, 0.5, 1.5, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, 1e308, Number.MIN_VALUE, -1e-300,
);

const version: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 6 }) },
  fc.constantFrom(0, -0, MAX_INT4, MAX_INT4 - 1),
  weirdNumber,
  fc.double(),
  wrongType,
);

/** Record ids that are valid however odd they look; each must round-trip exactly. */
const UNUSUAL_VALID_IDS = [
  '😀', '👩‍👩‍👧‍👦', '🇫🇷', 'שלום', 'مرحبا بالعالم', '\u202Eevil\u202C.txt', 'e\u0301', '\u00e9', 'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇', '\uFEFFbom',
  'zero\u200Bwidth', '\uFFFE\uFFFF', '\u{10FFFF}', '\u{E0001}\u{E0020}', ' ', '\t\n\r', '\u0001\u007F\u0085', '\u2028\u2029',
  "'; drop table records; --", "' or '1'='1", 'a?b??c', '$1 $2 ?? :name', '\\', '%_%', "E'\\\\x00'", '"; select pg_sleep(10); --',
  '/*', '*/', '--', "''", 'null', 'undefined', '__proto__', 'constructor', 'toString', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', 'ﷺ', 'Ⅻ', 'ß', 'İ',
  'x'.repeat(L.maxRecordIdLength), '😀'.repeat(L.maxRecordIdLength), '\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}',
];
const validRecordId: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...UNUSUAL_VALID_IDS),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\u0000')),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  fc.string({ minLength: 1, maxLength: 12 }),
);

const loneSurrogate = fc
  .tuple(fc.string({ maxLength: 5 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ maxLength: 5 }))
  .map(([a, c, b]) => a + String.fromCharCode(c) + b);

const invalidRecordId: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('', 'x'.repeat(L.maxRecordIdLength + 1), '😀'.repeat(L.maxRecordIdLength + 1), '\u0000', 'a\u0000b', '\uDC00\uD800', 'y'.repeat(100_000)),
  fc.string({ maxLength: 10 }).map((s) => `${s}\u0000`),
  loneSurrogate,
  wrongType,
);
const recordId: fc.Arbitrary<unknown> = fc.oneof({ weight: 3, arbitrary: validRecordId }, { weight: 2, arbitrary: invalidRecordId });

const validCiphertext: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 20, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }) },
  { weight: 4, arbitrary: fc.uint8Array({ minLength: 2, maxLength: 32 }).map((b) => b.subarray(1)) },
  // the largest accepted record: rare, since every digest reads it back
  { weight: 1, arbitrary: fc.constant(Buffer.alloc(L.maxRecordBytes, 0x5a)) },
);
const invalidCiphertext: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    new Uint8Array(0),
    Buffer.alloc(L.maxRecordBytes + 1, 1),
    new Uint8Array(1_000_000),
    new Uint16Array(4),
    new Uint8ClampedArray(4),
    new DataView(new ArrayBuffer(4)),
    new ArrayBuffer(4),
    Buffer.from('aGVsbG8=').toJSON(),
  ),
  fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }),
  wrongType,
);
const ciphertext = fc.oneof({ weight: 3, arbitrary: validCiphertext }, { weight: 2, arbitrary: invalidCiphertext });

const change: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ recordId, baseVersion: version, ciphertext }, { requiredKeys: ['recordId'] }) },
  { weight: 2, arbitrary: fc.record({ recordId, baseVersion: version, deleted: fc.constant(true) }) },
  fc.record({ recordId, baseVersion: version, ciphertext, deleted: fc.constantFrom<unknown>(true, false, undefined, 'true', 1, 0, null) }),
  wrongType,
);
const validChange = fc.record({ recordId: validRecordId, baseVersion: fc.integer({ min: 0, max: 3 }), ciphertext: validCiphertext });

const kdfParams: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ algorithm: fc.constantFrom('PBKDF2', 'PBKDF2-SHA256'), iterations: fc.integer({ min: 600_000, max: 2_000_000 }), saltLength: fc.integer({ min: 16, max: 64 }) }) },
  { weight: 2, arbitrary: fc.record({
    algorithm: fc.constant('Argon2id'), memoryMiB: fc.integer({ min: 15, max: 1024 }), iterations: fc.integer({ min: 2, max: 10 }),
    parallelism: fc.integer({ min: 1, max: 16 }), saltLength: fc.integer({ min: 16, max: 64 }),
  }) },
  // weak or malformed PBKDF2
  fc.record({
    algorithm: fc.constantFrom<unknown>('PBKDF2', 'PBKDF2-SHA256', 'PBKDF2-SHA1', 'pbkdf2-sha256', 'scrypt', 'MD5', '', undefined, 1),
    iterations: fc.oneof(fc.integer({ min: -10, max: 599_999 }), fc.integer({ min: 2_000_001, max: 2 ** 31 }), weirdNumber, wrongType, fc.constant(600_000)),
    saltLength: fc.oneof(fc.integer({ min: -1, max: 15 }), fc.integer({ min: 65, max: 1000 }), weirdNumber, wrongType, fc.constant(16)),
  }, { requiredKeys: [] }),
  // weak or malformed Argon2id
  fc.record({
    algorithm: fc.constant('Argon2id'),
    memoryMiB: fc.oneof(fc.integer({ min: -5, max: 14 }), fc.integer({ min: 1025, max: 1 << 20 }), weirdNumber, fc.constant(64)),
    iterations: fc.oneof(fc.integer({ min: -1, max: 1 }), fc.integer({ min: 11, max: 1000 }), weirdNumber, fc.constant(3)),
    parallelism: fc.oneof(fc.integer({ min: -1, max: 0 }), fc.integer({ min: 17, max: 255 }), weirdNumber, fc.constant(4)),
    saltLength: fc.oneof(fc.integer({ min: 0, max: 15 }), fc.constant(16)),
  }, { requiredKeys: [] }),
  // valid parameters plus something extra
  fc.tuple(fc.constantFrom<Record<string, unknown>>(pbkdf2, argon2id), fc.string({ minLength: 1, maxLength: 8 }), fc.anything({ maxDepth: 1 }))
    .map(([k, key, value]) => ({ ...k, [key]: value })),
  fc.anything({ maxDepth: 2 }),
);

/** `arb`'s value one time in seven; `use: false` otherwise. */
const sometimes = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<{ use: boolean; value: unknown }> =>
  fc.oneof({ weight: 6, arbitrary: fc.constant({ use: false, value: undefined }) }, arb.map((value) => ({ use: true, value })));

/** An envelope: its salt usually as long as `kdfParams.saltLength` says. */
const envelopeInput: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    kdfParams,
    wrappedKeyLength: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 32, max: 512 }) }, fc.constantFrom(0, 1, 31, 513, 4096)),
    saltLength: fc.oneof({ weight: 4, arbitrary: fc.constant<'match'>('match') }, fc.integer({ min: 0, max: 100 })),
    wrongWrappedKey: sometimes(fc.oneof(wrongType, invalidCiphertext)),
    wrongSalt: sometimes(fc.oneof(wrongType, fc.constant(new Uint16Array(8)))),
    fill: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ kdfParams: k, wrappedKeyLength, saltLength, wrongWrappedKey, wrongSalt, fill }) => {
    const declared = (k as { saltLength?: unknown } | null)?.saltLength;
    const size = saltLength === 'match' ? (isInt(declared, 0, 200) ? (declared as number) : 16) : saltLength;
    return {
      wrappedKey: wrongWrappedKey.use ? wrongWrappedKey.value : Buffer.alloc(wrappedKeyLength, fill),
      salt: wrongSalt.use ? wrongSalt.value : Buffer.alloc(size, fill ^ 0xff),
      kdfParams: k,
    };
  });

/** A valid envelope half the time, a fuzzed one otherwise (for calls that need a valid one to get anywhere). */
const mostlyValidEnvelope: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.tuple(fc.constantFrom(pbkdf2, argon2id), fc.integer({ min: 32, max: 512 }), fc.integer({ min: 0, max: 255 }))
    .map(([k, size, fill]) => ({ wrappedKey: Buffer.alloc(size, fill), salt: Buffer.alloc(k.saltLength, fill ^ 0x55), kdfParams: k })),
  envelopeInput,
);

const fingerprint: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  fc.constant(null),
  validRecordId,
  fc.constantFrom('z'.repeat(256), 'a\u0000', '\uD800'),
  wrongType,
);

const invalidUserId: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('', 'u'.repeat(256), '😀'.repeat(128), '\u0000', 'user\u0000a', '\uDFFF'),
  loneSurrogate,
  wrongType,
);

/** Cursor forgeries: text that decodes to almost-valid `v1.<uuid>.<seq>` triples. */
function forgedCursor(vaultIds: string[]): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.constantFrom('v1', 'v2', 'V1', '', 'v1 ', 'v'),
      fc.constantFrom(...vaultIds, ...vaultIds.map((v) => v.toUpperCase()), 'not-a-uuid', '', '00000000-0000-0000-0000-000000000000'),
      fc.constantFrom('0', '1', '5', '-1', '1e3', ' 1', '0x1', '1.5', '', '9'.repeat(15), '9'.repeat(16), '007', 'NaN', 'Infinity', '+1'),
      fc.constantFrom<string[]>([], ['x'], ['']),
    )
    .map(([p, v, s, extra]) => Buffer.from([p, v, s, ...extra].join('.'), 'utf8').toString('base64url'));
}

const enc = (vaultId: string, seq: number | string): string => Buffer.from(`v1.${vaultId}.${seq}`, 'utf8').toString('base64url');
const enc2 = (vaultId: string, seq: number | string, horizon: number | string): string => Buffer.from(`v2.${vaultId}.${seq}.${horizon}`, 'utf8').toString('base64url');

function cursorArb(own: string, other: string): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom<unknown>(undefined, null) },
    { weight: 3, arbitrary: fc.nat({ max: 40 }).map((s) => enc(own, s)) },
    { weight: 3, arbitrary: fc.tuple(fc.nat({ max: 40 }), fc.nat({ max: 40 })).map(([s, h]) => enc2(own, s, h)) },
    fc.tuple(fc.nat({ max: 40 }), fc.constantFrom('-1', '1.5', '', 'x', '9'.repeat(16))).map(([s, h]) => enc2(own, s, h)),
    fc.constantFrom(10 ** 15 - 1, 2 ** 53 - 1, 10 ** 15, 10 ** 20).map((s) => enc(own, s)),
    fc.nat({ max: 40 }).map((s) => enc(other, s)),
    fc.uuid().map((u) => enc(u, 0)),
    fc.tuple(fc.nat({ max: 40 }), fc.nat()).map(([s, k]) => {
      const c = enc(own, s);
      return c.slice(0, k % c.length);
    }),
    fc.tuple(fc.nat({ max: 40 }), fc.string({ minLength: 1, maxLength: 3 })).map(([s, junk]) => enc(own, s) + junk),
    forgedCursor([own, other]),
    fc.string({ maxLength: 150 }),
    fc.base64String({ maxLength: 160 }),
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.constant('A'.repeat(129)),
    wrongType,
  );
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

let db: TestDatabase;
let orm: MikroORM;
let owner: pg.Pool;
let sync: SyncService;
let dropLogin: () => Promise<void> = async () => {};
let digestSql = '';
const USER_A = 'fuzz_a';
const USER_B = 'fuzz_b';
const USER_C = 'fuzz_unicode';
let vaultA = '';
let vaultB = '';
/** Users the enableVault property created, so disableVault can be shown to succeed on some. */
const created: string[] = [];

/** md5 over every row of every table of the schema, read by the owner (who sees every row). */
async function digest(): Promise<string> {
  const { rows } = await owner.query<{ d: string }>(digestSql);
  return (rows[0] as { d: string }).d;
}

async function headOf(userId: unknown): Promise<Head | null> {
  if (!okUserId(userId)) return null;
  const { rows } = await owner.query<{ id: string; last_seq: string; purged_seq: string }>(
    'select id, last_seq, purged_seq from vaults where user_id = $1',
    [userId],
  );
  const row = rows[0];
  return row ? { id: row.id, lastSeq: Number(row.last_seq), purgedSeq: Number(row.purged_seq) } : null;
}

async function envelopeVersion(userId: string): Promise<number> {
  const { rows } = await owner.query<{ version: number }>('select version from vaults where user_id = $1', [userId]);
  return (rows[0] as { version: number }).version;
}

/** The cursor at the head of a user's feed, paging through whatever waits after `cursor`. */
async function drain(userId: string, cursor: string | null = null): Promise<string> {
  for (;;) {
    const page = await sync.pull(userId, { cursor, limit: L.maxPullLimit });
    cursor = page.cursor;
    if (!page.hasMore) return cursor;
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.constructor.name}: ${error.message.slice(0, 300)}`;
  return `non-error thrown: ${String(error)}`;
}

/** A rejection must be one of the package's own errors for bad input. */
function expectTypedRejection(error: unknown): void {
  expect(error instanceof VaultDbError, `expected a VaultDbError, got ${describeError(error)}`).toBe(true);
  expect(
    error instanceof DatabaseError || error instanceof TransientError || error instanceof ConfigurationError,
    `bad input reached the database instead of being rejected by validation: ${describeError(error)}`,
  ).toBe(false);
}

/**
 * Runs `call`; when `valid` is false it must fail with a typed error and leave every table as it
 * was; when true it must succeed, and `then` checks the result.
 */
async function check<T>(valid: boolean, call: () => Promise<T>, then?: (result: T) => Promise<void> | void): Promise<void> {
  const before = await digest();
  let result: T;
  try {
    result = await call();
  } catch (error) {
    expectTypedRejection(error);
    expect(await digest(), `a rejected call changed the database (${describeError(error)})`).toBe(before);
    expect(valid, `valid input was rejected: ${describeError(error)}`).toBe(false);
    tally.rejected++;
    return;
  }
  expect(valid, 'invalid input was accepted').toBe(true);
  await then?.(result);
  tally.accepted++;
}

/** How many generated calls were accepted and rejected, so a property can't pass vacuously. */
const tally = { accepted: 0, rejected: 0 };

/** Runs a property and checks that it exercised both outcomes at least `min` times each. */
async function assertBoth<T>(property: fc.IAsyncPropertyWithHooks<T>, numRuns: number, min = 3): Promise<void> {
  tally.accepted = 0;
  tally.rejected = 0;
  await fc.assert(property, runs<T>(numRuns));
  expect(tally.accepted, 'too few generated calls were valid').toBeGreaterThanOrEqual(Math.min(min, numRuns));
  expect(tally.rejected, 'too few generated calls were invalid').toBeGreaterThanOrEqual(Math.min(min, numRuns));
}

beforeAll(async () => {
  db = await createTestDatabase();
  const login = await ormLoginFor(db);
  dropLogin = login.drop;
  orm = await MikroORM.init(createConfig(login.url, { pool: { min: 0, max: 4 } }));
  owner = testPool(db.url, 2);
  sync = new SyncService(orm.em);
  const tables = (await owner.query<{ t: string }>(`select tablename as t from pg_tables where schemaname = 'public' order by 1`)).rows.map((r) => r.t);
  expect(tables).toEqual(expect.arrayContaining(['records', 'vaults']));
  digestSql = `select ${tables.map((t) => `'${t}=' || (select md5(coalesce(string_agg(x::text, ',' order by x::text), '')) from "${t}" x)`).join(` || ';' || `)} as d`;

  for (const user of [USER_A, USER_B, USER_C]) await sync.enableVault(user, envelope());
  const seedChanges = Array.from({ length: 5 }, (_, i) => ({ recordId: `seed-${i}`, baseVersion: 0, ciphertext: randomBytes(24) }));
  for (const user of [USER_A, USER_B]) {
    await sync.push(user, { changes: seedChanges });
    await sync.push(user, { changes: [{ recordId: 'seed-4', baseVersion: 1, deleted: true }, { recordId: 'seed-0', baseVersion: 1, ciphertext: randomBytes(30) }] });
  }
  vaultA = (await headOf(USER_A))?.id as string;
  vaultB = (await headOf(USER_B))?.id as string;
});

afterAll(async () => {
  await orm?.close(true);
  await owner?.end();
  await dropLogin();
  await db?.drop();
});

// ---------------------------------------------------------------------------------------------
// Properties, one or more per public method
// ---------------------------------------------------------------------------------------------

describe('fuzzed input to every SyncService method', () => {
  it('enableVault', async () => {
    const userId = fc.oneof(
      { weight: 3, arbitrary: validRecordId.map((s) => (s.length > 255 ? s.slice(0, 200) : s)).filter(okUserId) },
      fc.constantFrom(USER_A, USER_B),
      invalidUserId,
    );
    const input = fc.oneof(
      { weight: 6, arbitrary: fc.tuple(envelopeInput, fingerprint).map(([e, f]) => (f === undefined ? e : { ...e, deviceFingerprint: f })) },
      fc.anything({ maxDepth: 2 }),
      wrongType,
    );
    await assertBoth(
      fc.asyncProperty(userId, input, async (u, i) => {
        const valid = okUserId(u) && (await headOf(u)) === null && okEnvelope(i) && okFingerprint((i as { deviceFingerprint?: unknown }).deviceFingerprint);
        await check(valid, () => sync.enableVault(u as string, i as never), async (info) => {
          created.push(u as string);
          expect(info.userId).toBe(u);
          const read = await sync.getVault(u as string);
          expect(read?.userId).toBe(u);
          expect(read?.wrappedKey.equals((i as { wrappedKey: Uint8Array }).wrappedKey)).toBe(true);
          expect(read?.salt.equals((i as { salt: Uint8Array }).salt)).toBe(true);
          expect(read?.kdfParams).toEqual((i as { kdfParams: unknown }).kdfParams);
        });
      }),
      200,
    );
    expect(created.length).toBeGreaterThan(0);
  }, TIMEOUT);

  it('getVault', async () => {
    const userId = fc.oneof(validRecordId.filter(okUserId), fc.constantFrom(USER_A, USER_B, ...created.slice(0, 5)), invalidUserId);
    await assertBoth(
      fc.asyncProperty(userId, async (u) => {
        const head = await headOf(u);
        await check(okUserId(u), () => sync.getVault(u as string), (info) => {
          if (head === null) expect(info).toBeNull();
          else expect(info?.userId).toBe(u);
        });
      }),
      100,
    );
  }, TIMEOUT);

  it('push', async () => {
    const tooMany = Array.from({ length: L.maxChanges + 1 }, (_, i) => ({ recordId: `many-${i}`, baseVersion: 0, ciphertext: Buffer.from([i & 0xff]) }));
    const input = fc.oneof(
      { weight: 8, arbitrary: fc.record(
        { changes: fc.array(change, { maxLength: 6 }), atomic: fc.oneof(fc.boolean(), wrongType), cursor: cursorArb(vaultA, vaultB) },
        { requiredKeys: ['changes'] },
      ) },
      { weight: 2, arbitrary: fc.record({ changes: fc.array(validChange, { minLength: 1, maxLength: 6 }), cursor: cursorArb(vaultA, vaultB) }) },
      // duplicate ids within one push
      fc.tuple(validChange, validChange, fc.boolean()).map(([a, b, del]) => ({
        changes: [a, del ? { recordId: a.recordId, baseVersion: b.baseVersion, deleted: true } : { ...b, recordId: a.recordId }],
      })),
      fc.constant({ changes: tooMany }),
      fc.record({ changes: fc.oneof(wrongType, fc.anything({ maxDepth: 1 })) }),
      fc.anything({ maxDepth: 2 }),
      wrongType,
    );
    const userId = fc.oneof({ weight: 8, arbitrary: fc.constant<unknown>(USER_A) }, validRecordId.filter(okUserId), invalidUserId);
    await assertBoth(
      fc.asyncProperty(userId, input, async (u, i) => {
        const head = await headOf(u);
        const valid = okUserId(u) && head !== null && okPushShape(i) && okCursor((i as { cursor?: unknown }).cursor, head, false);
        await check(valid, () => sync.push(u as string, i as never), (result) => {
          // Every change is accounted for, as applied or as a conflict; an atomic push with a
          // conflict applies nothing and reports only what an earlier attempt had applied.
          const sent = (i as { changes: { recordId: string }[] }).changes.map((c) => c.recordId).sort();
          const reported = [...result.applied.map((a) => a.recordId), ...result.conflicts.map((c) => c.recordId)].sort();
          if ((i as { atomic?: unknown }).atomic === true && result.conflicts.length > 0) {
            expect(sent).toEqual(expect.arrayContaining(reported));
            expect(new Set(reported).size).toBe(reported.length);
          } else {
            expect(reported).toEqual(sent);
          }
          expect(okCursor(result.cursor, { ...(head as Head), lastSeq: Number.MAX_SAFE_INTEGER }, false)).toBe(true);
        });
      }),
      300,
    );
  }, TIMEOUT);

  it('pull', async () => {
    const limit = fc.oneof(fc.integer({ min: 1, max: L.maxPullLimit }), fc.constantFrom(0, L.maxPullLimit + 1, 2 ** 31), weirdNumber, wrongType);
    const maxBytes = fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.constantFrom(0, L.maxPullBytes, L.maxPullBytes + 1), weirdNumber, wrongType);
    const input = fc.oneof(
      { weight: 8, arbitrary: fc.record({ cursor: cursorArb(vaultA, vaultB), limit, maxBytes }, { requiredKeys: [] }) },
      fc.anything({ maxDepth: 2 }),
      wrongType,
    );
    const userId = fc.oneof({ weight: 8, arbitrary: fc.constant<unknown>(USER_A) }, validRecordId.filter(okUserId), invalidUserId);
    await assertBoth(
      fc.asyncProperty(userId, input, async (u, i) => {
        const head = await headOf(u);
        const cursor = typeof i === 'object' && i !== null ? (i as { cursor?: unknown }).cursor : undefined;
        const valid = okUserId(u) && head !== null && okPullShape(i) && okCursor(cursor, head, true);
        await check(valid, () => sync.pull(u as string, i as never), (result) => {
          expect(Array.isArray(result.changes)).toBe(true);
          expect(okCursor(result.cursor, head, true)).toBe(true);
        });
      }),
      300,
    );
  }, TIMEOUT);

  /** The envelope version to send: the current one, a stale one, or a malformed one. */
  const expectedVersion = fc.oneof(
    { weight: 4, arbitrary: fc.constant<'current'>('current') },
    fc.constantFrom<'stale'>('stale'),
    version,
  );
  const materialize = (plan: unknown, current: number): unknown => (plan === 'current' ? current : plan === 'stale' ? current - 1 : plan);

  it('rewrapKey', async () => {
    const input = fc.oneof(
      { weight: 8, arbitrary: fc.tuple(expectedVersion, mostlyValidEnvelope).map(([v, e]) => ({ ...e, expectedVersionPlan: v })) },
      fc.anything({ maxDepth: 2 }),
      wrongType,
    );
    const userId = fc.oneof({ weight: 8, arbitrary: fc.constant<unknown>(USER_A) }, validRecordId.filter(okUserId), invalidUserId);
    await assertBoth(
      fc.asyncProperty(userId, input, async (u, raw) => {
        const head = await headOf(u);
        const current = await envelopeVersion(head === null ? USER_A : (u as string));
        let i = raw;
        if (isRecordLike(raw) && 'expectedVersionPlan' in raw) {
          const { expectedVersionPlan, ...rest } = raw;
          i = { ...rest, expectedVersion: materialize(expectedVersionPlan, current) };
        }
        const given = typeof i === 'object' && i !== null ? (i as { expectedVersion?: unknown }).expectedVersion : undefined;
        const valid = head !== null && okEnvelope(i) && given === current;
        await check(valid, () => sync.rewrapKey(u as string, i as never), (info) => {
          expect(info.version).toBe(current + 1);
          expect(info.wrappedKey.equals((i as { wrappedKey: Uint8Array }).wrappedKey)).toBe(true);
        });
      }),
      150,
    );
  }, TIMEOUT);

  it('rotateKey', async () => {
    type Plan = 'exact' | 'missing' | 'unknown' | 'stale' | 'duplicate' | 'bad-field' | 'oversized' | 'too-many' | 'not-an-array';
    const plan = fc.constantFrom<Plan>('exact', 'exact', 'exact', 'exact', 'exact', 'missing', 'unknown', 'stale', 'duplicate', 'bad-field', 'oversized', 'too-many', 'not-an-array');
    const input = fc.oneof(
      { weight: 8, arbitrary: fc.record({ plan, envelope: mostlyValidEnvelope, expectedVersion, badField: fc.tuple(fc.constantFrom('recordId', 'baseVersion', 'ciphertext'), fc.oneof(invalidRecordId, weirdNumber, invalidCiphertext)) }) },
      fc.anything({ maxDepth: 2 }),
      wrongType,
    );
    const userId = fc.oneof({ weight: 10, arbitrary: fc.constant<unknown>(USER_A) }, validRecordId.filter(okUserId), invalidUserId);
    await assertBoth(
      fc.asyncProperty(userId, input, async (u, raw) => {
        const head = await headOf(u);
        const subject = head === null ? USER_A : (u as string);
        const current = await envelopeVersion(subject);
        const live = (await owner.query<{ record_id: string; version: number }>(
          'select record_id, version from records where user_id = $1 and not deleted order by seq', [subject],
        )).rows;
        let i: unknown = raw;
        let exact = false;
        if (isRecordLike(raw) && 'plan' in raw) {
          const r = raw as { plan: Plan; envelope: Record<string, unknown>; expectedVersion: unknown; badField: [string, unknown] };
          let records: unknown = live.map((l) => ({ recordId: l.record_id, baseVersion: l.version, ciphertext: Buffer.from([l.version, 1, 2]) }));
          const list = records as Record<string, unknown>[];
          exact = r.plan === 'exact';
          if (r.plan === 'missing') list.pop();
          if (r.plan === 'unknown') list.push({ recordId: `unknown-${randomBytes(3).toString('hex')}`, baseVersion: 1, ciphertext: Buffer.from([1]) });
          if (r.plan === 'stale' && list[0]) list[0].baseVersion = (list[0].baseVersion as number) + 1;
          if (r.plan === 'duplicate' && list[0]) list.push({ ...list[0] });
          if (r.plan === 'bad-field' && list[0]) list[0][r.badField[0]] = r.badField[1];
          if (r.plan === 'oversized' && list[0]) list[0].ciphertext = Buffer.alloc(L.maxRecordBytes + 1);
          if (r.plan === 'too-many') records = Array.from({ length: L.maxRotationRecords + 1 }, () => list[0] ?? {});
          if (r.plan === 'not-an-array') records = Object.fromEntries(list.map((l, n) => [n, l]));
          // 'missing', 'stale', ... on an empty vault change nothing: those stay exact.
          if (live.length === 0 && ['missing', 'stale', 'duplicate', 'bad-field', 'oversized'].includes(r.plan)) exact = true;
          i = { ...r.envelope, expectedVersion: materialize(r.expectedVersion, current), records };
        }
        const given = typeof i === 'object' && i !== null ? (i as { expectedVersion?: unknown }).expectedVersion : undefined;
        const valid = head !== null && exact && okEnvelope(i) && given === current;
        await check(valid, () => sync.rotateKey(u as string, i as never), async (info) => {
          expect(info.version).toBe(current + 1);
          const after = (await owner.query<{ record_id: string; ciphertext: Buffer }>(
            'select record_id, ciphertext from records where user_id = $1 and not deleted', [subject],
          )).rows;
          for (const row of after) expect(row.ciphertext.length).toBe(3);
        });
      }),
      120,
    );
  }, TIMEOUT);

  it('disableVault', async () => {
    const userId = fc.oneof(
      { weight: 2, arbitrary: created.length > 0 ? fc.constantFrom(...created.slice(0, 20)) : fc.constant('never-created') },
      validRecordId.filter(okUserId).filter((u) => ![USER_A, USER_B, USER_C].includes(u)),
      invalidUserId,
    );
    await assertBoth(
      fc.asyncProperty(userId, async (u) => {
        const head = await headOf(u);
        const records = head === null ? 0 : Number((await owner.query<{ n: string }>('select count(*) as n from records where vault_id = $1', [head.id])).rows[0]?.n);
        await check(okUserId(u) && head !== null, () => sync.disableVault(u as string), async (result) => {
          expect(result.deletedRecords).toBe(records);
          expect(await headOf(u)).toBeNull();
        });
      }),
      100,
    );
  }, TIMEOUT);

  it('purgeTombstones', async () => {
    // Dates outside years 1..9999 have a deterministic test of their own below.
    const date = fc.oneof(
      { weight: 4, arbitrary: fc.date({ noInvalidDate: true, min: new Date('1970-01-01'), max: new Date('2100-01-01') }) },
      fc.date({ noInvalidDate: false, min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z') }),
      fc.constantFrom(new Date(NaN), new Date('0001-01-01T00:00:00Z'), new Date('9999-12-31T23:59:59.999Z')),
      wrongType,
      fc.constantFrom('2020-01-01', 0, Date.now()),
    );
    const userId = fc.option(fc.oneof(fc.constantFrom<unknown>(USER_A, USER_B), validRecordId.filter(okUserId), invalidUserId), { nil: undefined });
    const input = fc.oneof(
      { weight: 8, arbitrary: fc.record({ olderThan: date, userId }, { requiredKeys: [] }) },
      fc.anything({ maxDepth: 2 }),
      wrongType,
    );
    await assertBoth(
      fc.asyncProperty(input, async (i) => {
        const { olderThan, userId: who } = isRecordLike(i) ? i : ({} as Record<string, unknown>);
        const valid = isRecordLike(i) && olderThan instanceof Date && !Number.isNaN(olderThan.getTime())
          && (who === undefined || who === null || okUserId(who));
        await check(valid, () => sync.purgeTombstones(i as never), (result) => {
          expect(Number.isInteger(result.purged) && result.purged >= 0).toBe(true);
        });
      }),
      150,
    );
  }, TIMEOUT);
});

describe('valid unusual input is accepted and round-trips exactly', () => {
  it('record ids of any well-formed Unicode, SQL fragments included, through push and pull', async () => {
    let cursor = await drain(USER_C);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.tuple(validRecordId, validCiphertext), { minLength: 1, maxLength: 5, selector: ([id]) => id }), async (pairs) => {
        const start = await drain(USER_C, cursor);
        // fast-check may generate a pair again (and does while shrinking): ids stored by an
        // earlier run are not new, and the same bytes re-sent count as already applied.
        const { rows: existing } = await owner.query<{ record_id: string; ciphertext: Buffer }>(
          'select record_id, ciphertext from records where user_id = $1 and record_id = any($2)',
          [USER_C, pairs.map(([id]) => id)],
        );
        const stored = new Map(existing.map((r) => [r.record_id, r.ciphertext]));
        const result = await sync.push(USER_C, { changes: pairs.map(([recordId, c]) => ({ recordId, baseVersion: 0, ciphertext: c })), cursor: start });
        for (const [id, c] of pairs) {
          const before = stored.get(id);
          const conflict = result.conflicts.find((x) => x.recordId === id);
          if (before === undefined || before.equals(Buffer.from(c))) {
            expect(conflict, `"${id}" should have been applied`).toBeUndefined();
            expect(result.applied.some((a) => a.recordId === id)).toBe(true);
          } else {
            // A different body under an id an earlier run created: a conflict carrying the same id.
            expect(conflict?.reason).toBe('exists');
            expect(conflict?.server?.recordId).toBe(id);
          }
        }
        const created = pairs.filter(([id]) => !stored.has(id));
        const pulled = await sync.pull(USER_C, { cursor: start });
        expect(pulled.changes.map((c) => c.recordId)).toEqual(created.map(([id]) => id));
        pulled.changes.forEach((c, n) => expect(c.ciphertext?.equals(Buffer.from((created[n] as [string, Uint8Array])[1]))).toBe(true));
        // And the database holds exactly those strings, byte for byte.
        const { rows: back } = await owner.query<{ record_id: string }>(
          'select record_id from records where user_id = $1 and record_id = any($2)',
          [USER_C, created.map(([id]) => id)],
        );
        expect(back.map((r) => r.record_id).sort()).toEqual(created.map(([id]) => id).sort());
        cursor = pulled.cursor;
      }),
      runs(100),
    );
  }, TIMEOUT);

  it('look-alike ids stay distinct: no normalization, case folding or trimming', async () => {
    const ids = ['\u00e9', 'e\u0301', 'E\u0301', 'ﬁ', 'fi', 'Å', 'A\u030A', '\u212B', 'k', 'K', '\u212A', ' lead', 'lead', 'trail ', 'trail'];
    const start = await drain(USER_C);
    const result = await sync.push(USER_C, { changes: ids.map((recordId, n) => ({ recordId: `lookalike:${recordId}`, baseVersion: 0, ciphertext: Buffer.from([n + 1]) })) });
    expect(result.conflicts).toEqual([]);
    const pulled = await sync.pull(USER_C, { cursor: start });
    expect(pulled.changes.map((c) => c.recordId)).toEqual(ids.map((id) => `lookalike:${id}`));
    expect(pulled.changes.map((c) => c.ciphertext?.[0])).toEqual(ids.map((_, n) => n + 1));
  }, TIMEOUT);

  it('user ids of unusual Unicode round-trip through enableVault, push, pull and getVault', async () => {
    // A prefix keeps them apart from the users the enableVault property may have made.
    for (const name of ['👩‍👩‍👧‍👦', 'שלום', "o'brien; drop table vaults; --", 'e\u0301', '\u00e9', 'u'.repeat(240), '$1?', '\u202E']) {
      const userId = `rt:${name}`;
      await sync.enableVault(userId, envelope());
      expect((await sync.getVault(userId))?.userId).toBe(userId);
      await sync.push(userId, { changes: [{ recordId: userId, baseVersion: 0, ciphertext: Buffer.from('x') }] });
      expect((await sync.pull(userId, {})).changes.map((c) => c.recordId)).toEqual([userId]);
      const { rows } = await owner.query<{ n: string }>('select count(*) as n from records where user_id = $1', [userId]);
      expect(Number(rows[0]?.n)).toBe(1);
    }
  }, TIMEOUT);

  it('accepts the exact bounds and rejects one past them', async () => {
    const atMax = { recordId: '😀'.repeat(L.maxRecordIdLength), baseVersion: 0, ciphertext: Buffer.alloc(L.maxRecordBytes, 1) };
    await check(true, () => sync.push(USER_C, { changes: [atMax] }));
    await check(false, () => sync.push(USER_C, { changes: [{ ...atMax, recordId: '😀'.repeat(L.maxRecordIdLength + 1) }] }));
    await check(false, () => sync.push(USER_C, { changes: [{ ...atMax, recordId: 'bound-2', ciphertext: Buffer.alloc(L.maxRecordBytes + 1, 1) }] }));
    await check(true, () => sync.push(USER_C, { changes: [{ recordId: 'bound-v', baseVersion: MAX_INT4, ciphertext: Buffer.from([1]) }] }));
    await check(false, () => sync.push(USER_C, { changes: [{ recordId: 'bound-v', baseVersion: MAX_INT4 + 1, ciphertext: Buffer.from([1]) }] }));
    const many = (n: number) => Array.from({ length: n }, (_, k) => ({ recordId: `bulk-${n}-${k}`, baseVersion: 0, ciphertext: Buffer.from([1]) }));
    await check(true, () => sync.push(USER_C, { changes: many(L.maxChanges) }));
    await check(false, () => sync.push(USER_C, { changes: many(L.maxChanges + 1) }));
    await check(true, () => sync.pull(USER_C, { limit: L.maxPullLimit, maxBytes: L.maxPullBytes }));
    await check(false, () => sync.pull(USER_C, { limit: L.maxPullLimit + 1 }));
    await check(false, () => sync.pull(USER_C, { maxBytes: L.maxPullBytes + 1 }));
  }, TIMEOUT);
});

describe('inputs the fuzzing found mishandled', () => {
  it('a delete of a record the server never had, at baseVersion 0, is valid input and must not reach a constraint', async () => {
    const id = `never-existed-${randomBytes(3).toString('hex')}`;
    const cursor = await drain(USER_A);
    await check(true, () => sync.push(USER_A, { changes: [{ recordId: id, baseVersion: 0, deleted: true }], cursor }), async (result) => {
      expect([...result.applied, ...result.conflicts].map((x) => x.recordId)).toEqual([id]);
      const { rows } = await owner.query<{ deleted: boolean }>('select deleted from records where user_id = $1 and record_id = $2', [USER_A, id]);
      // Either no row (a "gone" conflict) or a tombstone; never a live record.
      expect(rows.every((r) => r.deleted)).toBe(true);
    });
  });

  it('a sparse changes array: a hole is not a change, so the push is rejected rather than applied in part', async () => {
    const holey: unknown[] = [];
    holey.length = 3;
    holey[1] = { recordId: 'holey', baseVersion: 0, ciphertext: Buffer.from([1]) };
    await check(false, () => sync.push(USER_A, { changes: holey } as never));
  });

  it('a sparse records array: a rotation of an empty vault with a hole in records is rejected', async () => {
    const empty = `sparse-${randomBytes(3).toString('hex')}`;
    await sync.enableVault(empty, envelope());
    const records: unknown[] = [];
    records.length = 1;
    await check(false, () => sync.rotateKey(empty, { ...envelope(), expectedVersion: 1, records } as never));
  });

  it.each([
    ['year 275760 (the largest JavaScript date)', new Date(8.64e15)],
    ['year -271821 (the smallest JavaScript date)', new Date(-8.64e15)],
    ['year 10000', new Date('+010000-01-01T00:00:00Z')],
    ['year 0 (1 BC)', new Date('0000-06-01T00:00:00Z')],
    ['year -1', new Date('-000001-06-01T00:00:00Z')],
  ])('purgeTombstones with olderThan in %s ends in a ValidationError, not a driver error', async (_name, olderThan) => {
    for (const input of [{ olderThan }, { olderThan, userId: USER_A }]) {
      await check(false, () => sync.purgeTombstones(input));
    }
  });
});
