/**
 * Compares two catalog descriptions object by object and names each difference in one line, so
 * an operator reads "trigger public.vaults.x: state is disabled, expected enabled" rather than
 * two dumps to compare by eye.
 *
 * @module
 */
import type { CatalogDescription } from './catalog.js';

/** Longest value printed whole; longer ones (function bodies, view definitions) are excerpted. */
const MAX_VALUE = 160;

/**
 * Every difference between `actual` (the database under test) and `expected` (a freshly migrated
 * one), one line each, sorted by object: `missing <object>`, `extra <object>`, or
 * `<object>: <attribute> is <actual>, expected <expected>`.
 */
export function compareCatalogs(actual: CatalogDescription, expected: CatalogDescription): string[] {
  const lines: string[] = [];
  const keys = [...new Set([...expected.keys(), ...actual.keys()])].sort();
  for (const key of keys) {
    const want = expected.get(key);
    const have = actual.get(key);
    if (!have) {
      lines.push(`missing ${key}`);
      continue;
    }
    if (!want) {
      lines.push(`extra ${key}`);
      continue;
    }
    for (const attribute of [...new Set([...Object.keys(want), ...Object.keys(have)])].sort()) {
      const a = have[attribute] ?? null;
      const b = want[attribute] ?? null;
      if (a !== b) lines.push(`${key}: ${describeDifference(attribute, a, b)}`);
    }
  }
  return lines;
}

/** `attribute is X, expected Y`, excerpting long values around their first difference. */
export function describeDifference(attribute: string, actual: string | null, expected: string | null): string {
  if (attribute === 'grants') return describeGrants(actual, expected);
  if (actual !== null && expected !== null && (actual.length > MAX_VALUE || expected.length > MAX_VALUE)) {
    let at = 0;
    while (at < actual.length && at < expected.length && actual[at] === expected[at]) at++;
    const line = actual.slice(0, at).split('\n').length;
    return `${attribute} differs from line ${line} on: ${show(excerpt(actual, at))}, expected ${show(excerpt(expected, at))}`;
  }
  return `${attribute} is ${show(actual)}, expected ${show(expected)}`;
}

/** Grants differ grantee by grantee: `grants: PUBLIC has SELECT, expected nothing`. */
function describeGrants(actual: string | null, expected: string | null): string {
  const parse = (value: string | null) =>
    new Map(
      (value ?? '')
        .split('; ')
        .filter(Boolean)
        .map((entry) => [entry.slice(0, entry.lastIndexOf(': ')), entry.slice(entry.lastIndexOf(': ') + 2)] as const),
    );
  const have = parse(actual);
  const want = parse(expected);
  const grantees = [...new Set([...want.keys(), ...have.keys()])].sort();
  const parts = grantees
    .filter((grantee) => have.get(grantee) !== want.get(grantee))
    .map((grantee) => `${grantee} has ${have.get(grantee) ?? 'nothing'}, expected ${want.get(grantee) ?? 'nothing'}`);
  return `grants: ${parts.join('; ')}`;
}

function excerpt(value: string, at: number): string {
  const start = Math.max(0, at - 20);
  const text = value.slice(start, start + 80);
  return `${start > 0 ? '…' : ''}${text}${start + 80 < value.length ? '…' : ''}`;
}

function show(value: string | null): string {
  if (value === null) return 'not set';
  if (value === '') return 'empty';
  // One line per difference: newlines inside definitions are shown, not printed.
  return JSON.stringify(value.length > MAX_VALUE ? `${value.slice(0, MAX_VALUE)}…` : value);
}
