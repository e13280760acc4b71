/**
 * The README and docs/ are read from the published package as much as from the repository: every
 * link must reach a file the package ships (package.json `files`) and, with a `#fragment`, a
 * heading of that file. Files that only the repository has (sources, tests) are named as code, not
 * linked, and each one named must exist, so the guarantees table never points at a test that is
 * gone.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, test } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const files = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;

/** Whether npm packs `path`: README, LICENSE and package.json always; else a `files` entry matches it. */
function shipped(path: string): boolean {
  if (['README.md', 'LICENSE', 'package.json'].includes(path)) return true;
  return files.some((entry) => {
    if (!entry.includes('*')) return path === entry || path.startsWith(`${entry}/`);
    const pattern = entry.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*');
    return new RegExp(`^${pattern}$`).test(path);
  });
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line)?.[1];
    if (!heading) continue;
    const slug = heading.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

const documents = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  ...readdirSync(join(ROOT, 'docs/migration-templates')).filter((f) => f.endsWith('.md')).map((f) => `docs/migration-templates/${f}`),
];

describe.each(documents)('%s', (document) => {
  const text = readFileSync(join(ROOT, document), 'utf8');

  test('every relative link reaches a shipped file, and every #fragment one of its headings', () => {
    const broken: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(https?:|mailto:)/.test(target!)) continue;
      const [path, fragment] = target!.split('#') as [string, string | undefined];
      const file = path === '' ? document : normalize(join(dirname(document), path));
      if (!shipped(file)) broken.push(`${target} (${file} is not in the package)`);
      else if (!existsSync(join(ROOT, file))) broken.push(`${target} (no such file)`);
      else if (fragment && !anchors(readFileSync(join(ROOT, file), 'utf8')).has(fragment)) broken.push(`${target} (no such heading)`);
    }
    expect(broken).toEqual([]);
  });

  test('every repository file it names as code exists', () => {
    const named = [...text.matchAll(/`((?:src|test|bench|soak|scripts|examples|e2e|web)\/[\w./-]+\.(?:ts|sql|mjs|sh|json))`/g)].map((m) => m[1]!);
    expect(named.filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });
});

test('the matcher follows package.json: docs ship, sources and tests do not', () => {
  expect(shipped('docs/tls.md')).toBe(true);
  expect(shipped('docs/migration-templates/README.md')).toBe(true);
  expect(shipped('dist/index.js')).toBe(true);
  expect(shipped('src/index.ts')).toBe(false);
  expect(shipped('test/schema.test.ts')).toBe(false);
  expect(shipped('docs/sub/tls.md')).toBe(false);
});
