/**
 * The application role of docs/app-role.sql as statements the bin (`vault-db create-app-role`)
 * runs: a login role that owns nothing, is no superuser and has no BYPASSRLS, so vault-db's
 * row-level security applies to it, with only the grants the service needs. docs/app-role.sql
 * explains each grant; test/cli.test.ts checks the role created here behaves as it says.
 *
 * @module
 */

/** The role name docs/app-role.sql uses. */
export const DEFAULT_APP_ROLE = 'vault_app';

/** The variable the bin reads the new role's password from (never an argument: shells log those). */
export const APP_PASSWORD_ENV = 'VAULT_DB_APP_PASSWORD';

/**
 * The statements, as templates of PostgreSQL's `format()`: `%1$I` the role name, `%2$L` the
 * password. Quoted by the server, so no name or password is ever pasted into SQL by this code.
 */
export const APP_ROLE_TEMPLATES = [
  'create role %1$I login password %2$L nosuperuser nocreatedb nocreaterole nobypassrls',
  'grant usage on schema public to %1$I',
  'grant select, insert, update, delete on vaults, records, key_rotations, staged_records to %1$I',
  'grant execute on function public.vault_db_current_user() to %1$I',
] as const;

/** The statements for printing (`--print`): the role name quoted, the password a placeholder. */
export function printableAppRoleStatements(role: string): string[] {
  const ident = /^[a-z_][a-z0-9_$]*$/.test(role) ? role : `"${role.replace(/"/g, '""')}"`;
  return APP_ROLE_TEMPLATES.map((t) => t.replaceAll('%1$I', ident).replaceAll('%2$L', "'<password>'"));
}
