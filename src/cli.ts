#!/usr/bin/env node
/**
 * The `vault-db` command an app runs from its own folder (`npx vault-db <command>`):
 *
 * - `migrate`: applies vault-db's pending migrations: `runMigrations()`, the same lock and rules;
 * - `status`: lists the applied and pending migrations (read-only);
 * - `validate [--database-url <url>]`: the read-only schema check: a scratch database on the same
 *   server is migrated and compared with the database (and the entities);
 * - `create-app-role [--role <name>]`: creates the application role of docs/app-role.sql, with
 *   the password in `VAULT_DB_APP_PASSWORD`; `--print` prints the SQL instead.
 *
 * URLs come from `DIRECT_URL` (migrations, the owner) and `DATABASE_URL`; with neither set it
 * fails with one line. It reads nothing from and writes nothing into its own install folder, and
 * never starts a server. Exit codes: 0 done; 1 refused, failed or (validate) the schema differs;
 * 2 a usage or configuration error (the check could not be done).
 *
 * @module
 */
import { MikroORM } from '@mikro-orm/postgresql';
import { createConfig, VAULT_DB_TABLES } from './config.js';
import { checkDatabaseReachable, parseDatabaseUrl, resolveDatabaseUrl, resolveMigrationUrl, type DatabaseTarget } from './database-url.js';
import { ConfigurationError, VaultDbError } from './errors.js';
import { runMigrations } from './migrate.js';
import type { VaultDbMigrator } from './migrations-runner/vault-db-migrator.js';
import { withClient } from './pg-client.js';
import { checkSchema, schemaMatches } from './schema-check/check-schema.js';
import { describeLocation } from './schema-check/database-identity.js';
import { APP_PASSWORD_ENV, APP_ROLE_TEMPLATES, DEFAULT_APP_ROLE, printableAppRoleStatements } from './app-role.js';

const USAGE = `usage: vault-db <command>
  migrate                      apply vault-db's pending migrations (DIRECT_URL, else DATABASE_URL)
  status                       list applied and pending migrations (read-only)
  validate [--database-url U]  compare the database with a freshly migrated one (read-only)
  create-app-role [--role N] [--print]
                               create the application role (password from ${APP_PASSWORD_ENV})`;

/** A usage error: exit 2 with the usage text. */
class UsageError extends Error {}

function option(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const value = args[at + 1];
  if (!value || value.startsWith('--')) throw new UsageError(`${name} needs a value`);
  return value;
}

async function migrate(): Promise<number> {
  const target = await resolveMigrationUrl();
  const report = await runMigrations({ url: target.url, log: (line) => console.log(`vault-db: ${line}`) });
  console.log(`vault-db: ${report.applied.length} migration(s) applied, ${report.previouslyApplied.length} before (PostgreSQL ${report.serverVersion})`);
  return 0;
}

async function status(): Promise<number> {
  const target = await resolveMigrationUrl();
  await checkDatabaseReachable(target);
  const orm = await MikroORM.init(createConfig(target.url, { pool: { min: 0, max: 1 } }));
  try {
    const migrator = orm.migrator as VaultDbMigrator;
    const applied = (await migrator.getExecutedMigrations()).map((m) => m.name);
    const pending = (await migrator.getPendingMigrations()).map((m) => m.name);
    console.log(`applied (${applied.length}): ${applied.join(', ') || 'none'}`);
    console.log(`pending (${pending.length}): ${pending.join(', ') || 'none'}`);
  } finally {
    await orm.close(true);
  }
  return 0;
}

async function validate(args: string[]): Promise<number> {
  const given = option(args, '--database-url');
  if (given) parseDatabaseUrl(given, '--database-url');
  const checked: DatabaseTarget = given ? { url: given, source: 'DATABASE_URL' } : await resolveDatabaseUrl();
  const direct = process.env.DIRECT_URL?.trim() || undefined;
  const admin: DatabaseTarget = direct ? { url: direct, source: 'DIRECT_URL' } : checked;
  await checkDatabaseReachable(admin);
  if (admin.url !== checked.url) await checkDatabaseReachable(checked);
  const report = await checkSchema({ databaseUrl: checked.url, adminUrl: admin.url, journalUrl: direct !== checked.url ? direct : undefined });
  const say = (ok: boolean, line: string, details: string[]) => {
    const out = ok ? console.log : console.error;
    out(`vault-db validate: ${line}`);
    for (const detail of details) out(`  ${detail}`);
  };
  const drift = report.migratedVsEntities;
  say(drift.length === 0, drift.length === 0 ? 'a freshly migrated database matches the entities.' : 'a freshly migrated database differs from the entities:', [...new Set(drift)]);
  const where = describeLocation(checked.url);
  const { mine: catalog, others } = vaultDbDifferences(report.catalog ?? []);
  if (others > 0) console.log(`vault-db validate: ${others} object(s) of the app's own tables ignored.`);
  say(
    catalog.length === 0,
    catalog.length === 0 ? `${where} matches a freshly migrated database (${report.objectsCompared} objects and journal rows compared).` : `${where} differs from a freshly migrated database in ${catalog.length} place(s):`,
    catalog,
  );
  return schemaMatches({ ...report, catalog }) ? 0 : 1;
}

/**
 * The differences that concern vault-db: every missing or changed object, and the extra objects
 * (`extra <kind> public.<name>…`) named after one of vault-db's tables or with its `vault_db_`
 * prefix. The app's own tables, indexes and sequences in the same database are not vault-db's.
 */
function vaultDbDifferences(lines: string[]): { mine: string[]; others: number } {
  const prefixes = [...VAULT_DB_TABLES, 'vault_db_', ...VAULT_DB_TABLES.map((t) => `idx_${t}`)];
  const mine = lines.filter((line) => {
    const extra = /^extra \S+ (?:"?[^".\s]+"?\.)?"?([^".\s]+)/.exec(line);
    return !extra || prefixes.some((p) => (extra[1] ?? '').startsWith(p));
  });
  return { mine, others: lines.length - mine.length };
}

async function createAppRole(args: string[]): Promise<number> {
  const role = option(args, '--role') ?? DEFAULT_APP_ROLE;
  if (args.includes('--print')) {
    console.log(printableAppRoleStatements(role).map((s) => `${s};`).join('\n'));
    return 0;
  }
  const password = process.env[APP_PASSWORD_ENV];
  if (!password || password.length < 16) {
    throw new ConfigurationError(`Set ${APP_PASSWORD_ENV} to the new role's password (16 characters or more, a random secret), or pass --print to see the SQL.`);
  }
  const target = await resolveMigrationUrl();
  await checkDatabaseReachable(target);
  await withClient(target.url, async (client) => {
    await client.query('begin');
    try {
      // format() quotes the name and the password on the server: nothing is pasted into SQL here.
      for (const template of APP_ROLE_TEMPLATES) {
        const { rows } = await client.query<{ sql: string }>('select format($1, $2::text, $3::text) as sql', [template, role, password]);
        await client.query(rows[0]?.sql ?? '');
      }
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    }
  });
  console.log(`vault-db: created role ${role} with the grants of docs/app-role.sql; give the service DATABASE_URL with this role.`);
  return 0;
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case 'migrate':
      return migrate();
    case 'status':
      return status();
    case 'validate':
      return validate(rest);
    case 'create-app-role':
      return createAppRole(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`vault-db: ${error.message}\n${USAGE}`);
      process.exit(2);
    }
    // One line for what vault-db explains; the stack only for the unexpected.
    console.error(`vault-db: ${error instanceof Error && error instanceof VaultDbError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(error instanceof ConfigurationError ? 2 : 1);
  },
);
