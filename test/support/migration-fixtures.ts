/**
 * Migration folders for tests: a copy of the real migrations, optionally edited or extended with
 * fixture migrations, in a temporary folder under `.data/` (git-ignored, and inside the project
 * so the copies resolve `@mikro-orm/migrations` from its node_modules). Test-only migrations
 * never go into src/migrations.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig, MIGRATIONS_DIR } from '../../src/config.js';
import type { MigratorOptions } from '../../src/migrations-runner/options.js';
import type { VaultDbMigrator } from '../../src/migrations-runner/vault-db-migrator.js';
import { PROJECT_ROOT } from './cli.js';

/** A temporary migrations folder. */
export interface MigrationFolder {
  dir: string;
  /** Names of the migrations in it, in the order they apply. */
  names(): Promise<string[]>;
  /** Adds (or overwrites) a migration file, `source` being its TypeScript text. */
  write(name: string, source: string): Promise<void>;
  /** Rewrites the file of migration `name` with `edit`; fails if nothing changed. */
  edit(name: string, edit: (source: string) => string): Promise<void>;
  /** Import path of a module of src/ as seen from a migration in this folder (e.g. `migrations-runner/x.js`). */
  srcImport(module: string): string;
  remove(): Promise<void>;
}

/** Copies the real migrations into a fresh temporary folder. */
export async function copyMigrations(options: { only?: (name: string) => boolean } = {}): Promise<MigrationFolder> {
  const dir = path.join(PROJECT_ROOT, '.data', `migrations-fixture-${randomBytes(5).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  for (const file of await readdir(MIGRATIONS_DIR)) {
    if (!/^Migration\d+\.ts$/.test(file)) continue;
    if (options.only && !options.only(file.replace(/\.ts$/, ''))) continue;
    await copyFile(path.join(MIGRATIONS_DIR, file), path.join(dir, file));
  }
  return {
    dir,
    names: async () => (await readdir(dir)).filter((f) => /^Migration\d+\.ts$/.test(f)).map((f) => f.replace(/\.ts$/, '')).sort(),
    write: (name, source) => writeFile(path.join(dir, `${name}.ts`), source),
    edit: async (name, edit) => {
      const file = path.join(dir, `${name}.ts`);
      const before = await readFile(file, 'utf8');
      const after = edit(before);
      if (after === before) throw new Error(`the edit of ${name} changed nothing`);
      await writeFile(file, after);
    },
    srcImport: (module) => path.relative(dir, path.join(PROJECT_ROOT, 'src', module)).split(path.sep).join('/'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * An ORM on `url` whose migrator runs the migrations of folder `dir` instead of the package's list
 * (the snapshot left alone); `journalTable` sets `migrations.tableName` (the package's default
 * otherwise).
 */
export async function ormWithMigrations(url: string, dir: string, options: Partial<MigratorOptions> = {}, journalTable?: string): Promise<{ orm: MikroORM; migrator: VaultDbMigrator }> {
  const config = createConfig(url, { pool: { min: 0, max: 2 } });
  const migrations = { ...config.migrations, migrationsList: undefined, glob: 'Migration*.{js,ts}', path: dir, pathTs: dir, snapshot: false };
  const orm = await MikroORM.init({ ...config, migrations: journalTable === undefined ? migrations : { ...migrations, tableName: journalTable } });
  const migrator = (orm.migrator as VaultDbMigrator).configure({ log: () => {}, ...options });
  return { orm, migrator };
}

/**
 * The source of migration class `name` whose `up()` creates `table` with `columns` and whose
 * `down()` drops it: the smallest real migration, for tests about which migrations run.
 */
export function createTableMigration(name: string, table: string, columns = '(x int)'): string {
  return `import { Migration } from '@mikro-orm/migrations';
export class ${name} extends Migration {
  override async up(): Promise<void> { this.addSql('create table ${table} ${columns};'); }
  override async down(): Promise<void> { this.addSql('drop table ${table};'); }
}
`;
}
