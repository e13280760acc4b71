/**
 * `npm start`: brings the database to the current schema, prints its status, and runs the
 * two-device walkthrough. Uses DATABASE_URL, or the embedded PostgreSQL when it is unset.
 * Idempotent: run it as often as you like.
 */
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { ConfigurationError, createConfig, redactUrl, resolveDatabaseUrl, runMigrations, VaultDbError } from '../src/index.js';
import { runTwoDeviceWalkthrough } from './two-devices.js';

const DEMO_USER = 'user_demo_walkthrough';

async function main(): Promise<void> {
  const target = await resolveDatabaseUrl();
  const report = await runMigrations({ log: (line) => console.log(`  ${line}`) });
  const where = target.source === 'embedded' ? `embedded PostgreSQL (${redactUrl(target.url)})` : `DATABASE_URL ${redactUrl(target.url)}`;
  console.log(`database:   ${where}`);
  console.log(`server:     PostgreSQL ${report.serverVersion}`);
  console.log(`migrations: ${report.applied.length} applied just now, ${report.previouslyApplied.length} before`);

  const orm = await MikroORM.init(createConfig(target.url));
  try {
    const drift = await orm.schema.getUpdateSchemaSQL({ wrap: false });
    if (drift.trim()) throw new ConfigurationError(`the database schema differs from the entities; run npm run schema:validate for details`);
    console.log('schema:     valid (the database matches the entities)\n');

    console.log('Two-device walkthrough:');
    await runTwoDeviceWalkthrough(orm.em, DEMO_USER, (line) => console.log(`  ${line}`));
    await showRows(target.url);
  } finally {
    await orm.close(true);
  }
}

/** Shows what the server actually stores: only ciphertext. */
async function showRows(url: string): Promise<void> {
  const client = new pg.Client(pgConnectionConfig(url));
  await client.connect();
  try {
    const vault = await client.query(`select user_id, version, octet_length(wrapped_key) as wrapped_key_bytes, encode(substr(wrapped_key, 1, 12), 'hex') as wrapped_key_head, kdf_params::text as kdf_params from vaults where user_id = $1`, [DEMO_USER]);
    const records = await client.query(`select record_id, version, deleted, octet_length(ciphertext) as bytes, encode(substr(ciphertext, 1, 16), 'hex') as ciphertext_head from records where user_id = $1 order by record_id`, [DEMO_USER]);
    console.log('\nWhat the server holds (no URL, title or key in sight):');
    console.table(vault.rows);
    console.table(records.rows);
  } finally {
    await client.end();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof VaultDbError ? `vault-db: ${error.message}` : error);
    process.exit(1);
  },
);
