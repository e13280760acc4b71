/**
 * Every migration of vault-db, in the order it applies. MikroORM gets this list (its
 * `migrationsList` option) instead of a folder to scan, so the migrations are ordinary imported
 * modules: a bundler keeps them, and nothing is looked up beside `import.meta.url` at run time.
 *
 * A new migration (`npm run db:create-migration`) must be added here at the end;
 * test/migrations-index.test.ts fails until it is.
 *
 * @module
 */
import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261127113603 } from './Migration20261127113603.js';
import { Migration20261127113700 } from './Migration20261127113700.js';
import { Migration20261127123000 } from './Migration20261127123000.js';
import { Migration20261127130000 } from './Migration20261127130000.js';
import { Migration20261130100000 } from './Migration20261130100000.js';
import { Migration20261130100100 } from './Migration20261130100100.js';
import { Migration20261130100200 } from './Migration20261130100200.js';
import { Migration20261130100300 } from './Migration20261130100300.js';
import { Migration20261130200000 } from './Migration20261130200000.js';
import { Migration20261130210000 } from './Migration20261130210000.js';
import { Migration20261130220000 } from './Migration20261130220000.js';
import { Migration20261130230000 } from './Migration20261130230000.js';

/** The migrations, oldest first, as MikroORM's `migrationsList` takes them. */
export const migrationsList: readonly MigrationObject[] = [
  { name: 'Migration20261127113603', class: Migration20261127113603 },
  { name: 'Migration20261127113700', class: Migration20261127113700 },
  { name: 'Migration20261127123000', class: Migration20261127123000 },
  { name: 'Migration20261127130000', class: Migration20261127130000 },
  { name: 'Migration20261130100000', class: Migration20261130100000 },
  { name: 'Migration20261130100100', class: Migration20261130100100 },
  { name: 'Migration20261130100200', class: Migration20261130100200 },
  { name: 'Migration20261130100300', class: Migration20261130100300 },
  { name: 'Migration20261130200000', class: Migration20261130200000 },
  { name: 'Migration20261130210000', class: Migration20261130210000 },
  { name: 'Migration20261130220000', class: Migration20261130220000 },
  { name: 'Migration20261130230000', class: Migration20261130230000 },
];
