/**
 * src/error-chain.ts: the cause chain that error classification (transient.ts), the claim-key
 * source and the migration runner walk, and the SQLSTATE found on it. No database: the errors are
 * the shapes MikroORM, knex and node-pg raise.
 */
import { describe, expect, test } from 'vitest';
import { causeChain, isSqlState, sqlStateOf } from '../../src/error-chain.js';

test('causeChain: the error and its causes, outermost first', () => {
  const inner = { code: '42P01' };
  const middle = { cause: inner };
  const outer = new Error('outer', { cause: middle });
  expect(causeChain(outer)).toEqual([outer, middle, inner]);
  expect(causeChain(null)).toEqual([]);
});

test('isSqlState: five digits or capital letters, nothing else, and not an errno name', () => {
  for (const code of ['42501', '08006', '55P03', '2BP01', 'XX000', 'P0001', 'HV00B', 'F0000']) expect(isSqlState(code)).toBe(true);
  for (const code of ['4250', '425011', '42 01', 'x42501', '42p01', 42501, undefined]) expect(isSqlState(code)).toBe(false);
  // Node's errno names of five capitals look like SQLSTATEs; no SQLSTATE class starts with E.
  for (const code of ['EPIPE', 'EPERM', 'EBUSY', 'EBADF', 'E2BIG']) expect(isSqlState(code)).toBe(false);
});

describe('sqlStateOf', () => {
  test('the code of the error itself, or of the first cause that has one', () => {
    expect(sqlStateOf(Object.assign(new Error('denied'), { code: '42501' }))).toBe('42501');
    const wrapped = new Error('MikroORM', { cause: new Error('knex', { cause: Object.assign(new Error('pg'), { code: '42P01' }) }) });
    expect(sqlStateOf(wrapped)).toBe('42P01');
  });

  test('codes that are not SQLSTATEs are passed over, down to the one that is', () => {
    const error = Object.assign(new Error('outer'), { code: 'ECONNRESET', cause: Object.assign(new Error('inner'), { code: '08006' }) });
    expect(sqlStateOf(error)).toBe('08006');
    for (const code of ['4250', '425011', '42 01', 'x42501', 42501]) {
      expect(sqlStateOf(Object.assign(new Error('odd'), { code }))).toBeUndefined();
    }
  });

  test('the walk stops at the end of the chain, and after eight causes', () => {
    expect(sqlStateOf(new Error('no code'))).toBeUndefined();
    expect(sqlStateOf(null)).toBeUndefined();
    expect(sqlStateOf(undefined)).toBeUndefined();
    const chain = (depth: number): unknown => (depth === 0 ? { code: '40001' } : { cause: chain(depth - 1) });
    expect(sqlStateOf(chain(7))).toBe('40001');
    expect(sqlStateOf(chain(8))).toBeUndefined();
    // A cycle ends too.
    const loop: { cause?: unknown } = {};
    loop.cause = loop;
    expect(sqlStateOf(loop)).toBeUndefined();
  });
});
