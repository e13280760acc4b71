/**
 * `npm run schema:validate [-- --database-url <url>]`: the schema check of src/schema-check,
 * from the command line. Read-only: it writes no file and changes nothing in the checked
 * database; it migrates a scratch database on the same server and drops it.
 *
 * Without `--database-url` it checks that the entities match the migrations. With it, it also
 * compares that database's catalog and journal with the scratch database's, naming each
 * difference in one line.
 *
 * The scratch database is created through `DIRECT_URL` when set (its role needs CREATEDB), else
 * through the checked URL (or `DATABASE_URL`, or the embedded server). When the checked URL's
 * role may not read the migration journal (an application role), the journal is read through
 * `DIRECT_URL`, which must reach the same database.
 *
 * Exit codes: 0 the schema is as the code expects; 1 it differs (each difference named);
 * 2 the check could not be done (one line says why and what to set).
 */
import { checkDatabaseReachable, type DatabaseTarget } from '../src/database-url.js';
import { resolveDatabaseUrlOrEmbedded as resolveDatabaseUrl } from '../src/embedded.js';
import { MIGRATIONS_DIR } from '../src/config.js';
import { describeLocation } from '../src/schema-check/database-identity.js';
import { checkSchema, schemaMatches } from '../src/schema-check/check-schema.js';

async function main(): Promise<number> {
  const flag = process.argv.indexOf('--database-url');
  const given = flag >= 0 ? process.argv[flag + 1] : undefined;
  if (flag >= 0 && !given) throw new Error('--database-url needs a URL');
  const direct = process.env.DIRECT_URL?.trim() || undefined;
  const admin: DatabaseTarget = direct
    ? { url: direct, source: 'DIRECT_URL' }
    : given
      ? { url: given, source: 'DATABASE_URL' }
      : await resolveDatabaseUrl();
  await checkDatabaseReachable(admin);
  if (given && given !== admin.url) await checkDatabaseReachable({ url: given, source: 'DATABASE_URL' });

  const report = await checkSchema({ databaseUrl: given, adminUrl: admin.url, journalUrl: direct !== given ? direct : undefined, snapshotDir: MIGRATIONS_DIR });
  const say = (ok: boolean, line: string, details: string[] = []) => {
    const out = ok ? console.log : console.error;
    out(`schema:validate: ${line}`);
    for (const detail of details) out(`  ${detail}`);
  };
  if (report.entitiesVsMigrations.length === 0) say(true, 'the entities match the migrations.');
  else say(false, 'the entities differ from the migrations (the snapshot); run `npm run db:create-migration`. Missing:', report.entitiesVsMigrations);
  if (report.migratedVsEntities.length === 0) say(true, 'a freshly migrated database matches the entities.');
  else say(false, 'a freshly migrated database differs from the entities. To make it match:', report.migratedVsEntities);
  if (given && report.catalog) {
    const where = describeLocation(given);
    if (report.catalog.length === 0) say(true, `${where} matches a freshly migrated database (${report.objectsCompared} objects and journal rows compared).`);
    else say(false, `${where} differs from a freshly migrated database in ${report.catalog.length} place(s):`, report.catalog);
  }
  return schemaMatches(report) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`schema:validate: ${error instanceof Error ? error.message : String(error)}`);
    // 2: the check could not be done, which is not the same as "the schema differs".
    process.exit(2);
  },
);
