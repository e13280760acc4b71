/**
 * The verdict on one pushed change (src/sync/judge.ts) without a database: write, already applied
 * (a re-sent push) or which conflict, around every version bound. test/sync/ checks the same rules
 * through the service on PostgreSQL.
 */
import { describe, expect, test } from 'vitest';
import type { VaultRecord } from '../../src/entities/vault-record.js';
import type { ValidChange } from '../../src/sync/input.js';
import { judge, MAX_VERSION } from '../../src/sync/judge.js';

const A = Buffer.from('ciphertext A');
const B = Buffer.from('ciphertext B');

/** The fields judge reads of a server record; the entity itself needs the ORM. */
const server = (version: number, ciphertext: Buffer | null): VaultRecord =>
  ({ version, deleted: ciphertext === null, ciphertext: ciphertext ?? Buffer.alloc(0) }) as unknown as VaultRecord;
const write = (baseVersion: number, ciphertext: Buffer): ValidChange => ({ recordId: 'r', baseVersion, ciphertext });
const remove = (baseVersion: number): ValidChange => ({ recordId: 'r', baseVersion, ciphertext: null });

describe('a record the server does not hold', () => {
  test('a create is written just above the version floor', () => {
    expect(judge(write(0, A), undefined, 0)).toEqual({ kind: 'write', version: 1 });
    expect(judge(write(0, A), undefined, 41)).toEqual({ kind: 'write', version: 42 });
    expect(judge(write(0, A), undefined, MAX_VERSION - 1)).toEqual({ kind: 'write', version: MAX_VERSION });
  });

  test('a create past the last version is version_exhausted', () => {
    expect(judge(write(0, A), undefined, MAX_VERSION)).toEqual({ kind: 'conflict', reason: 'version_exhausted' });
  });

  test('an update or a delete of it is gone', () => {
    expect(judge(write(3, A), undefined, 0)).toEqual({ kind: 'conflict', reason: 'gone' });
    expect(judge(remove(0), undefined, 0)).toEqual({ kind: 'conflict', reason: 'gone' });
    expect(judge(remove(3), undefined, 0)).toEqual({ kind: 'conflict', reason: 'gone' });
  });
});

describe('a record the server holds', () => {
  test('a change at its version is written one above', () => {
    expect(judge(write(4, B), server(4, A), 0)).toEqual({ kind: 'write', version: 5 });
    expect(judge(remove(4), server(4, A), 0)).toEqual({ kind: 'write', version: 5 });
    expect(judge(write(4, B), server(4, null), 0)).toEqual({ kind: 'write', version: 5 });
    expect(judge(write(MAX_VERSION - 1, B), server(MAX_VERSION - 1, A), 0)).toEqual({ kind: 'write', version: MAX_VERSION });
  });

  test('a change at the last version is version_exhausted', () => {
    expect(judge(write(MAX_VERSION, B), server(MAX_VERSION, A), 0)).toEqual({ kind: 'conflict', reason: 'version_exhausted' });
  });

  test('a re-sent create of the same live ciphertext is already applied; anything else is exists', () => {
    expect(judge(write(0, A), server(7, A), 0)).toEqual({ kind: 'already_applied', version: 7 });
    expect(judge(write(0, B), server(7, A), 0)).toEqual({ kind: 'conflict', reason: 'exists' });
    expect(judge(write(0, A), server(7, null), 0)).toEqual({ kind: 'conflict', reason: 'exists' });
    expect(judge(remove(0), server(7, A), 0)).toEqual({ kind: 'conflict', reason: 'exists' });
  });

  test('a re-sent update or delete is already applied when the server holds its result one version up', () => {
    expect(judge(write(4, A), server(5, A), 0)).toEqual({ kind: 'already_applied', version: 5 });
    expect(judge(remove(4), server(5, null), 0)).toEqual({ kind: 'already_applied', version: 5 });
  });

  test('otherwise a stale change is a version_mismatch, or gone when the record is deleted', () => {
    expect(judge(write(4, B), server(5, A), 0)).toEqual({ kind: 'conflict', reason: 'version_mismatch' });
    expect(judge(remove(4), server(5, A), 0)).toEqual({ kind: 'conflict', reason: 'version_mismatch' });
    expect(judge(write(3, A), server(5, A), 0)).toEqual({ kind: 'conflict', reason: 'version_mismatch' });
    expect(judge(write(6, A), server(5, A), 0)).toEqual({ kind: 'conflict', reason: 'version_mismatch' });
    expect(judge(write(4, A), server(5, null), 0)).toEqual({ kind: 'conflict', reason: 'gone' });
    expect(judge(remove(3), server(5, null), 0)).toEqual({ kind: 'conflict', reason: 'gone' });
  });
});
