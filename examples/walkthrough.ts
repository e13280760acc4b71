/**
 * `npm run walkthrough`: brings the database to the current schema, checks it, prints its status,
 * and runs the two-device walkthrough in a database of its own.
 *
 * - The database is `DATABASE_URL`, or the embedded PostgreSQL when it is unset. Migrations go
 *   through `DIRECT_URL` when it is set; then both must reach the same database (asked of the
 *   servers, since Neon's pooled and direct URLs differ by host name), or it refuses in one line.
 * - The walkthrough never writes into that database: it creates `vault_db_demo_<random>` on the
 *   same server (through `DIRECT_URL` when set), migrates it, runs there and drops it; or it runs
 *   in the database named by `VAULT_DB_DEMO_DATABASE_URL` (or `--demo-database-url <url>`).
 *
 * Idempotent: run it as often as you like.
 */
import { randomBytes } from 'node:crypto';
import { MikroORM } from '@mikro-orm/postgresql';
import {
  checkDatabaseReachable,
  ConfigurationError,
  createConfig,
  redactUrl,
  runMigrations,
  VaultDbError,
  type DatabaseTarget,
} from '../src/index.js';
import { MIGRATIONS_DIR } from '../src/config.js';
import { resolveDatabaseUrlOrEmbedded, resolveMigrationUrlOrEmbedded } from '../src/embedded.js';
import { withClient, withDatabase } from '../src/pg-client.js';
import { checkSchema, schemaMatches } from '../src/schema-check/check-schema.js';
import { databaseIdentity, describeLocation, sameDatabase } from '../src/schema-check/database-identity.js';
import { runTwoDeviceWalkthrough } from './two-devices.js';

const DEMO_USER = 'user_demo_walkthrough';

async function main(): Promise<number> {
  // The walkthrough is a development tool: with no DATABASE_URL it asks for the embedded server.
  const app = await resolveDatabaseUrlOrEmbedded();
  const migration = await resolveMigrationUrlOrEmbedded();
  const serverVersion = await checkDatabaseReachable(app);
  if (migration.url !== app.url) {
    await checkDatabaseReachable(migration);
    await assertSameDatabase(app, migration);
  }

  const report = await runMigrations({ url: migration.url, log: (line) => console.log(`  ${line}`) });
  console.log(`database:   ${describe(app)}`);
  if (migration.url !== app.url) console.log(`migrated:   through ${describe(migration)} (the same database)`);
  console.log(`server:     PostgreSQL ${serverVersion}`);
  console.log(`migrations: ${report.applied.length} applied just now, ${report.previouslyApplied.length} before`);

  if (!(await showSchemaStatus(app, migration))) return 1;

  const demo = await demoDatabase(migration);
  if (!demo) return 0;
  try {
    await runMigrations({ url: demo.url, log: () => {} });
    const orm = await MikroORM.init(createConfig(demo.url));
    try {
      console.log(`\nTwo-device walkthrough, in ${demo.created ? 'a database of its own' : 'the demo database'} (${describeLocation(demo.url)}):`);
      await runTwoDeviceWalkthrough(orm.em, DEMO_USER, (line) => console.log(`  ${line}`));
      await showRows(demo.url);
    } finally {
      await orm.close(true);
    }
  } finally {
    if (demo.created) await withClient(migration.url, (c) => c.query(`drop database if exists "${demo.name}" with (force)`));
  }
  if (demo.created) console.log(`(the walkthrough's database ${demo.name} was dropped)`);
  return 0;
}

function describe(target: DatabaseTarget): string {
  return target.source === 'embedded' ? `embedded PostgreSQL (${redactUrl(target.url)})` : `${target.source} ${redactUrl(target.url)}`;
}

/** Refuses two URLs that reach different databases, in one line. */
async function assertSameDatabase(app: DatabaseTarget, migration: DatabaseTarget): Promise<void> {
  const [a, b] = await Promise.all([withClient(app.url, databaseIdentity), withClient(migration.url, databaseIdentity)]);
  if (!sameDatabase(a, b)) {
    throw new ConfigurationError(
      `${migration.source} (${describeLocation(migration.url)}) and ${app.source} (${describeLocation(app.url)}) are different databases; ` +
        `npm run walkthrough migrates through ${migration.source} and reports on ${app.source}, so point both at the same database.`,
    );
  }
}

/** Prints whether the schema is as the code expects; false when it differs. */
async function showSchemaStatus(app: DatabaseTarget, migration: DatabaseTarget): Promise<boolean> {
  try {
    const check = await checkSchema({
      databaseUrl: app.url,
      adminUrl: migration.url,
      journalUrl: migration.url !== app.url ? migration.url : undefined,
      snapshotDir: MIGRATIONS_DIR,
    });
    if (schemaMatches(check)) {
      console.log(`schema:     valid (the entities match the migrations, and the database matches a freshly migrated one: ${check.objectsCompared} objects)`);
      return true;
    }
    console.error('schema:     differs; run npm run schema:validate -- --database-url <url> for the same list:');
    for (const line of [...check.entitiesVsMigrations, ...check.migratedVsEntities, ...(check.catalog ?? [])]) console.error(`  ${line}`);
    return false;
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    console.log(`schema:     not checked: ${error.message}`);
    return true;
  }
}

/** The walkthrough's database: the one named for it, or a fresh one (null when none can be had). */
async function demoDatabase(migration: DatabaseTarget): Promise<{ url: string; name: string; created: boolean } | null> {
  const flag = process.argv.indexOf('--demo-database-url');
  const named = (flag >= 0 ? process.argv[flag + 1] : undefined) ?? process.env.VAULT_DB_DEMO_DATABASE_URL?.trim();
  if (named) {
    await checkDatabaseReachable({ url: named, source: 'DATABASE_URL' });
    return { url: named, name: new URL(named).pathname.slice(1), created: false };
  }
  const name = `vault_db_demo_${randomBytes(4).toString('hex')}`;
  try {
    await withClient(migration.url, (c) => c.query(`create database "${name}"`));
  } catch (error) {
    if ((error as { code?: string }).code !== '42501') throw error;
    console.log(
      `\nwalkthrough: skipped; it runs only in a database of its own, and the role of ${describeLocation(migration.url)} may not create one. ` +
        'Set VAULT_DB_DEMO_DATABASE_URL to a database the walkthrough may write into.',
    );
    return null;
  }
  return { url: withDatabase(migration.url, name), name, created: true };
}

/** Shows what the server actually stores: only ciphertext. */
async function showRows(url: string): Promise<void> {
  await withClient(url, async (client) => {
    const vault = await client.query(`select user_id, version, octet_length(wrapped_key) as wrapped_key_bytes, encode(substr(wrapped_key, 1, 12), 'hex') as wrapped_key_head, kdf_params::text as kdf_params from vaults where user_id = $1`, [DEMO_USER]);
    const records = await client.query(`select record_id, version, deleted, octet_length(ciphertext) as bytes, encode(substr(ciphertext, 1, 16), 'hex') as ciphertext_head from records where user_id = $1 order by record_id`, [DEMO_USER]);
    console.log('\nWhat the server holds (no URL, title or key in sight):');
    console.table(vault.rows);
    console.table(records.rows);
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof VaultDbError ? `vault-db: ${error.message}` : error);
    process.exit(1);
  },
);
