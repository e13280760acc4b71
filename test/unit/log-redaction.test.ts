/**
 * The bytea redaction of the debug log (src/log-redaction.ts) as pure text rules: every bytea
 * literal MikroORM's PostgreSQL platform writes becomes `<bytea N bytes>`, and nothing else in the
 * statement changes. test/security/no-secrets-in-debug-log.test.ts runs it against real statements.
 */
import { describe, expect, test } from 'vitest';
import { redactBytea } from '../../src/log-redaction.js';

describe('redactBytea', () => {
  test.each([
    [`update "vaults" set "salt" = E'\\\\x0a1b2c' where "id" = 'v1'`, `update "vaults" set "salt" = <bytea 3 bytes> where "id" = 'v1'`],
    [`values (E'\\\\xDEADBEEF', E'\\\\x')`, `values (<bytea 4 bytes>, <bytea 0 bytes>)`],
    [`values ('\\\\x00ff')`, `values (<bytea 2 bytes>)`],
    [`values ('\\x00ff')`, `values (<bytea 2 bytes>)`],
  ])('%s', (input, expected) => {
    expect(redactBytea(input)).toBe(expected);
  });

  test.each([
    `select * from "records" where "record_id" = 'x' and "user_id" = 'u'`,
    `select 'not \\\\xhex' as a`,
    `select '{"algorithm":"PBKDF2","iterations":600000}'`,
  ])('leaves statements without bytea literals alone: %s', (input) => {
    expect(redactBytea(input)).toBe(input);
  });
});
