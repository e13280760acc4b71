/**
 * `npm run schema:validate`: fails, naming the difference, when
 *  1. the entities and the migration snapshot disagree (a migration is missing), or
 *  2. a database migrated with the real migrations differs from the entities.
 *
 * By default it migrates a fresh scratch database and drops it afterwards. With `--database-url
 * <url>` it checks that database as it is (for example production, after `db:migrate`).
 */
import { randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/postgresql';
import type { Migrator } from '@mikro-orm/migrations';
import { createConfig } from '../src/config.js';
import { checkDatabaseReachable, resolveDatabaseUrl, type DatabaseTarget } from '../src/database-url.js';
import { runMigrations } from '../src/migrate.js';
import { adminQuery, withDatabase } from './database-admin.js';

async function main(): Promise<number> {
  const flag = process.argv.indexOf('--database-url');
  const given = flag >= 0 ? process.argv[flag + 1] : undefined;
  const target: DatabaseTarget = given ? { url: given, source: 'DATABASE_URL' } : await resolveDatabaseUrl();
  await checkDatabaseReachable(target);
  const server = target.url;
  const scratch = `vault_db_schema_check_${randomBytes(4).toString('hex')}`;
  const url = given ?? withDatabase(server, scratch);
  let failures = 0;

  if (!given) {
    await adminQuery(server, `create database "${scratch}"`);
    await runMigrations({ url, log: () => {} });
  }
  const orm = await MikroORM.init(createConfig(url, { pool: { min: 0, max: 1 } }));
  try {
    const check = await (orm.getMigrator() as Migrator).checkMigrationNeeded();
    if (check) {
      failures++;
      const diff = await (orm.getMigrator() as Migrator).createMigration(undefined, true);
      console.error('schema:validate: the entities differ from the migration snapshot; run `npm run db:create-migration`. Missing:');
      for (const line of diff.diff.up) console.error(`  ${line}`);
    } else {
      console.log('schema:validate: entities match the migrations.');
    }

    const drift = await orm.schema.getUpdateSchemaSQL({ wrap: false, safe: false, dropTables: true });
    if (drift.trim() !== '') {
      failures++;
      console.error('schema:validate: the migrated database differs from the entities. To make it match:');
      for (const line of drift.trim().split('\n')) console.error(`  ${line}`);
    } else {
      console.log('schema:validate: the migrated database matches the entities.');
    }
  } finally {
    await orm.close(true);
    if (!given) await adminQuery(server, `drop database if exists "${scratch}" with (force)`);
  }
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`schema:validate: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
