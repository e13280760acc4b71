/**
 * Feed cursors (src/sync/cursor.ts) without a database: the format, what a malformed or foreign
 * cursor is, and the resume rules against a vault's head and purge horizon, each on both sides of
 * its bound. test/sync/cursor.test.ts checks the same rules through the service on PostgreSQL.
 */
import { describe, expect, test } from 'vitest';
import { ResyncRequiredError } from '../../src/errors.js';
import { decodeCursor, encodeCursor, parseCursor, resumePosition, type FeedHead } from '../../src/sync/cursor.js';

const VAULT = '3f2a1b4c-5d6e-4f70-8192-a3b4c5d6e7f8';
const OTHER = '00000000-0000-4000-8000-000000000000';

const raw = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** The message of the ResyncRequiredError `run` throws. */
function resync(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ResyncRequiredError);
    return (error as Error).message;
  }
  throw new Error('expected a ResyncRequiredError');
}

describe('encodeCursor and parseCursor', () => {
  test('the format is v2.<vault>.<seq>.<horizon>, base64url', () => {
    expect(Buffer.from(encodeCursor(VAULT, 42, 7), 'base64url').toString('utf8')).toBe(`v2.${VAULT}.42.7`);
    expect(Buffer.from(encodeCursor(VAULT, 42), 'base64url').toString('utf8')).toBe(`v2.${VAULT}.42.0`);
  });

  test('round trip', () => {
    expect(parseCursor(encodeCursor(VAULT, 0, 0))).toEqual({ vaultId: VAULT, seq: 0, horizon: 0 });
    expect(parseCursor(encodeCursor(VAULT, 999_999_999_999_999, 123))).toEqual({ vaultId: VAULT, seq: 999_999_999_999_999, horizon: 123 });
  });

  test('a v1 cursor (before the horizon) is read with horizon 0', () => {
    expect(parseCursor(raw(`v1.${VAULT}.5`))).toEqual({ vaultId: VAULT, seq: 5, horizon: 0 });
  });

  test.each([
    ['empty', ''],
    ['not base64url', `${raw(`v2.${VAULT}.1.0`)}=`],
    ['a character outside base64url', 'abc+def'],
    // Node's base64 decoder skips whitespace, so only the pattern check refuses these. Built with
    // raw(), not encodeCursor(): a table is built while tests are collected, outside any test, so
    // a mutant of encodeCursor that throws would fail the whole file instead of a test.
    ['a valid cursor after a space', ` ${raw(`v2.${VAULT}.1.0`)}`],
    ['a valid cursor before a space', `${raw(`v2.${VAULT}.1.0`)} `],
    ['longer than 128 characters', 'A'.repeat(129)],
    ['a v1 cursor with a horizon', raw(`v1.${VAULT}.5.0`)],
    ['a v2 cursor without a horizon', raw(`v2.${VAULT}.5`)],
    ['a v2 cursor with an extra part', raw(`v2.${VAULT}.5.0.1`)],
    ['an unknown version', raw(`v3.${VAULT}.5.0`)],
    ['no vault id', raw('v2')],
    ['an upper-case vault id', raw(`v2.${VAULT.toUpperCase()}.5.0`)],
    ['a vault id with a prefix', raw(`v2.x${VAULT}.5.0`)],
    ['a vault id with a suffix', raw(`v2.${VAULT}x.5.0`)],
    ['no seq', raw(`v2.${VAULT}..0`)],
    ['a negative seq', raw(`v2.${VAULT}.-1.0`)],
    ['a seq with a letter', raw(`v2.${VAULT}.1a.0`)],
    ['a seq with a leading letter', raw(`v2.${VAULT}.a1.0`)],
    ['a 16-digit seq', raw(`v2.${VAULT}.${'9'.repeat(16)}.0`)],
    ['a non-numeric horizon', raw(`v2.${VAULT}.1.x`)],
    ['an empty horizon', raw(`v2.${VAULT}.1.`)],
    ['a 16-digit horizon', raw(`v2.${VAULT}.1.${'9'.repeat(16)}`)],
  ])('%s is malformed', (_label, cursor) => {
    expect(resync(() => parseCursor(cursor))).toContain('the cursor is malformed');
  });

  test('a cursor of exactly 128 characters is read when well-formed', () => {
    // Pad the seq with leading zeros until the encoding is 128 characters long.
    const text = `v2.${VAULT}.000000000000001.000000000000002`;
    const cursor = raw(text);
    expect(cursor.length).toBeLessThanOrEqual(128);
    expect(parseCursor(cursor)).toEqual({ vaultId: VAULT, seq: 1, horizon: 2 });
  });
});

describe('decodeCursor', () => {
  test("a cursor of this vault is decoded, another vault's is refused", () => {
    expect(decodeCursor(encodeCursor(VAULT, 3, 1), VAULT)).toEqual({ vaultId: VAULT, seq: 3, horizon: 1 });
    expect(resync(() => decodeCursor(encodeCursor(OTHER, 3, 1), VAULT))).toContain('the cursor belongs to another vault');
  });
});

describe('resumePosition', () => {
  const head = (lastSeq: number, purgedSeq: number): FeedHead => ({ vaultId: VAULT, lastSeq, purgedSeq });
  const at = (seq: number, horizon = 0) => ({ vaultId: VAULT, seq, horizon });

  test('no cursor starts from 0, for a pull always and for a push while nothing was purged', () => {
    expect(resumePosition(null, head(10, 4), 'pull')).toBe(0);
    expect(resumePosition(null, head(10, 0), 'push')).toBe(0);
  });

  test('a push without a cursor is refused once the vault has a purge horizon', () => {
    expect(resync(() => resumePosition(null, head(10, 1), 'push'))).toContain('a push without a cursor may predate them');
  });

  test("another vault's cursor is refused", () => {
    expect(resync(() => resumePosition({ vaultId: OTHER, seq: 1, horizon: 0 }, head(10, 0), 'pull'))).toContain('belongs to another vault');
  });

  test('a cursor up to the head continues; one past it is ahead of the vault', () => {
    expect(resumePosition(at(10), head(10, 0), 'pull')).toBe(10);
    expect(resumePosition(at(0), head(10, 0), 'push')).toBe(0);
    expect(resync(() => resumePosition(at(11), head(10, 0), 'pull'))).toContain('the cursor is ahead of the vault');
  });

  test('a horizon up to the head is accepted; one past it is ahead of the vault', () => {
    expect(resumePosition(at(2, 10), head(10, 10), 'pull')).toBe(2);
    expect(resync(() => resumePosition(at(2, 11), head(11 - 1, 0), 'push'))).toContain('the cursor is ahead of the vault');
  });

  test('a purge above both the position and the horizon needs a resync; at either of them it does not', () => {
    expect(resync(() => resumePosition(at(5, 3), head(10, 6), 'pull'))).toContain('deletions this cursor had not seen were purged');
    expect(resync(() => resumePosition(at(3, 5), head(10, 6), 'push'))).toContain('deletions this cursor had not seen were purged');
    expect(resumePosition(at(6, 0), head(10, 6), 'push')).toBe(6);
    expect(resumePosition(at(2, 6), head(10, 6), 'pull')).toBe(2);
  });
});
