/**
 * One migrated database per test run, which every test database is cloned from
 * (`CREATE DATABASE … TEMPLATE`), instead of each test file migrating its own.
 *
 * Why: a clone is one statement, while migrating costs each file a few hundred milliseconds of
 * module loading and DDL. More importantly, it keeps the migrations runner out of every test's
 * coverage: only the tests about migrations (which start from an empty database) reach it. A
 * mutation run of the runner then re-runs those tests, not the whole suite.
 *
 * A clone is the template's copy, claim key included, so each clone gets a key of its own
 * (`vault_db_rotate_claim_key()`, the migration's own way of making one). Nothing else in a
 * migrated database is per database: roles are the server's, and the migrations create none.
 */
import { randomBytes } from 'node:crypto';
import { runMigrations } from '../../src/migrate.js';
import { adminQuery, withDatabase } from '../../scripts/database-admin.js';

/** The prefix of every database the tests make, so a killed run's leftovers are easy to find. */
export const TEST_DATABASE_PREFIX = 'vault_db_test_';

/** A migrated database that test databases are cloned from. */
export interface TemplateDatabase {
  name: string;
  /** Drops the template (at the end of the run). */
  drop(): Promise<void>;
}

/**
 * Creates and migrates the run's template on the server of `serverUrl` (the direct URL: a role
 * that may create databases). Nothing may stay connected to it, or cloning waits and fails, so
 * only {@link cloneTemplate} ever names it afterwards.
 */
export async function createTemplateDatabase(serverUrl: string): Promise<TemplateDatabase> {
  const name = `${TEST_DATABASE_PREFIX}template_${randomBytes(5).toString('hex')}`;
  const drop = () => adminQuery(serverUrl, `drop database if exists "${name}" with (force)`);
  await adminQuery(serverUrl, `create database "${name}"`);
  try {
    await runMigrations({ url: withDatabase(serverUrl, name), log: () => {} });
  } catch (error) {
    await drop();
    throw error;
  }
  return { name, drop };
}

/** Creates database `name` as a copy of the template, with a claim key of its own. */
export async function cloneTemplate(serverUrl: string, template: string, name: string): Promise<void> {
  await adminQuery(serverUrl, `create database "${name}" template "${template}"`);
  await adminQuery(withDatabase(serverUrl, name), 'select public.vault_db_rotate_claim_key()');
}
