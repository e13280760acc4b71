/**
 * Database chores of scripts/consumer-test.sh, through the repository's `pg`:
 *   create <server-url> <name>   creates the database and prints its URL
 *   drop <server-url> <name>     drops it (forcing other sessions off)
 *   journal <database-url>       prints "<rows> <distinct names>" of vault_db_migrations
 */
import type pg from 'pg';
import { withClient, withDatabase } from '../src/pg-client.js';

const [command, url, name] = process.argv.slice(2);
if (!url) throw new Error('usage: consumer-db.ts create|drop <server-url> <name> | journal <database-url>');
const ident = (value: string | undefined) => {
  if (!value || !/^[a-z0-9_]+$/.test(value)) throw new Error(`not a plain database name: ${value}`);
  return `"${value}"`;
};
switch (command) {
  case 'create':
    await withClient(url, (c) => c.query(`create database ${ident(name)}`));
    console.log(withDatabase(url, name as string));
    break;
  case 'drop':
    await withClient(url, (c) => c.query(`drop database if exists ${ident(name)} with (force)`));
    break;
  case 'journal': {
    const { rows } = await withClient(url, (c: pg.Client) =>
      c.query<{ n: number; d: number }>('select count(*)::int as n, count(distinct name)::int as d from vault_db_migrations'),
    );
    console.log(`${rows[0]?.n ?? 0} ${rows[0]?.d ?? 0}`);
    break;
  }
  default:
    throw new Error(`unknown command ${command}`);
}
