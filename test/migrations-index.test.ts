/**
 * src/migrations/index.ts is the list the package runs (MikroORM's `migrationsList`): every
 * migration file of src/migrations must be in it, once, in name order, under its own class, or a
 * new migration (`npm run db:create-migration`) would silently never run.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, test } from 'vitest';
import { MIGRATIONS_DIR } from '../src/config.js';
import { migrationsList } from '../src/migrations/index.js';

test('the index lists every migration file, in order, each under its class', async () => {
  const files = readdirSync(MIGRATIONS_DIR).filter((f) => /^Migration\d+\.ts$/.test(f)).map((f) => f.replace(/\.ts$/, '')).sort();
  expect(files.length).toBeGreaterThan(0);
  expect(migrationsList.map((m) => m.name)).toEqual(files);
  for (const { name, class: Class } of migrationsList) {
    const module = (await import(/* @vite-ignore */ pathToFileURL(path.join(MIGRATIONS_DIR, `${name}.ts`)).href)) as Record<string, unknown>;
    expect(Class).toBe(module[name]);
  }
});
