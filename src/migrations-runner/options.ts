/**
 * Options of the migration runner, shared by `runMigrations()` and the MikroORM CLI (which reads
 * them from the environment), validated with zod so a typo or a nonsense value fails at once
 * with one line naming the option.
 *
 * @module
 */
import { z } from 'zod';
import { ConfigurationError } from '../errors.js';

/** PostgreSQL's `lock_timeout` is an int of milliseconds. */
const MAX_TIMEOUT_MS = 2_147_483_647;

const timeoutMs = z.number().int().min(1).max(MAX_TIMEOUT_MS);

/** What to do when the database lists applied migrations this code doesn't have. */
export type UnknownMigrationsPolicy = 'refuse' | 'warn';

/** Tunables of a migration run; every field has a default (see {@link MIGRATOR_DEFAULTS}). */
export interface MigratorOptions {
  /** Receives one line per migration applied or reverted, and warnings. Default: `console.log`. */
  log: (line: string) => void;
  /** How long to wait for another process's migration run, in ms. Default 120,000. */
  lockTimeoutMs: number;
  /**
   * How long one migration's statements may wait for a table lock, in ms (`lock_timeout`, set
   * transaction-locally). While a DDL statement waits, the application's queries on that table
   * queue behind it, so keep this below the application's own lock timeout. Default 2,000.
   */
  ddlLockTimeoutMs: number;
  /** How many times a migration is tried when its lock wait times out. Default 5. */
  ddlLockAttempts: number;
  /** Pause before the second attempt, in ms; it doubles for each further one (with jitter). Default 1,000. */
  ddlRetryDelayMs: number;
  /**
   * The database lists applied migrations this code doesn't know (it is ahead: a newer release
   * ran, then the code was rolled back). `refuse` (default) throws `MigrationRefusedError`
   * before changing anything; `warn` logs a line and goes on.
   */
  onUnknownMigrations: UnknownMigrationsPolicy;
  /**
   * Declares the URL as going through a transaction-mode pooler (the runner then refuses it).
   * `false` declares it direct and turns off the declaration checks (the probe still runs).
   */
  pooled: boolean | undefined;
}

/** The defaults of {@link MigratorOptions}. */
export const MIGRATOR_DEFAULTS: MigratorOptions = {
  log: (line) => console.log(line),
  lockTimeoutMs: 120_000,
  ddlLockTimeoutMs: 2_000,
  ddlLockAttempts: 5,
  ddlRetryDelayMs: 1_000,
  onUnknownMigrations: 'refuse',
  pooled: undefined,
};

const optionsSchema = z
  .object({
    // z.custom, not z.function(): the latter would hand back a wrapper, not the caller's function.
    log: z.custom<(line: string) => void>((value) => typeof value === 'function', 'must be a function').optional(),
    lockTimeoutMs: timeoutMs.optional(),
    ddlLockTimeoutMs: timeoutMs.optional(),
    ddlLockAttempts: z.number().int().min(1).max(100).optional(),
    ddlRetryDelayMs: z.number().int().min(0).max(600_000).optional(),
    onUnknownMigrations: z.enum(['refuse', 'warn']).optional(),
    pooled: z.boolean().optional(),
  })
  .strict();

/** Validates a partial set of options; throws {@link ConfigurationError} naming the bad one. */
export function parseMigratorOptions(input: unknown, source = 'migration option'): Partial<MigratorOptions> {
  const result = optionsSchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue?.path.join('.') || '(options)';
    const keys = issue?.code === 'unrecognized_keys' ? ` ${issue.keys.join(', ')}` : '';
    throw new ConfigurationError(`Invalid ${source} ${path}${keys}: ${issue?.message ?? 'invalid'}.`);
  }
  return result.data as Partial<MigratorOptions>;
}

/**
 * The options the environment sets, for the MikroORM CLI (`npm run db:migrate`), which has no
 * other way to receive them: `VAULT_DB_MIGRATION_LOCK_TIMEOUT_MS`, `VAULT_DB_DDL_LOCK_TIMEOUT_MS`,
 * `VAULT_DB_DDL_LOCK_ATTEMPTS`, `VAULT_DB_UNKNOWN_MIGRATIONS` (`refuse` or `warn`).
 */
export function migratorOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<MigratorOptions> {
  const out: Record<string, unknown> = {};
  const variables: [string, keyof MigratorOptions, 'number' | 'text'][] = [
    ['VAULT_DB_MIGRATION_LOCK_TIMEOUT_MS', 'lockTimeoutMs', 'number'],
    ['VAULT_DB_DDL_LOCK_TIMEOUT_MS', 'ddlLockTimeoutMs', 'number'],
    ['VAULT_DB_DDL_LOCK_ATTEMPTS', 'ddlLockAttempts', 'number'],
    ['VAULT_DB_UNKNOWN_MIGRATIONS', 'onUnknownMigrations', 'text'],
  ];
  for (const [variable, key, kind] of variables) {
    const value = env[variable]?.trim();
    if (!value) continue;
    if (kind === 'number' && !/^\d+$/.test(value)) throw new ConfigurationError(`${variable} must be a whole number, not "${value}".`);
    try {
      Object.assign(out, parseMigratorOptions({ [key]: kind === 'number' ? Number(value) : value }));
    } catch (error) {
      throw new ConfigurationError(`${variable}="${value}" is not valid: ${(error as Error).message.replace(/^Invalid [^:]*: /, '')}`);
    }
  }
  return out as Partial<MigratorOptions>;
}
