/**
 * Where the claim key comes from, and how the owner reads and rotates it.
 *
 * The key lives in one row of `public.vault_db_claim_key`, which only the owner role may read
 * (migration Migration20261130210000 fills it with 32 random bytes). The application role can't
 * read it, so its service gets the key from the `claimKey` option or `VAULT_DB_CLAIM_KEY`; a
 * service that connects as the owner (development, `npm start`, maintenance jobs) reads it from
 * the database on first use.
 *
 * @module
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { sqlStateOf } from '../error-chain.js';
import { ConfigurationError } from '../errors.js';
import { CLAIM_LIFETIME_SECONDS, parseClaimKey, type ClaimRejection } from './claim.js';
import { classifyFailure } from './transient.js';

/** The environment variable `SyncService` reads the claim key from when the option is absent. */
export const CLAIM_KEY_ENV = 'VAULT_DB_CLAIM_KEY';

/** The SQL, run as the owner, that prints the key in the form `VAULT_DB_CLAIM_KEY` takes. */
export const READ_CLAIM_KEY_SQL = "select encode(key, 'hex') from public.vault_db_claim_key";

const NO_READ_RIGHT =
  `SyncService has no claim key and this database role may not read it (only the owner may): set ${CLAIM_KEY_ENV} ` +
  `(or the claimKey option) to the key, which the owner prints with: ${READ_CLAIM_KEY_SQL};`;

/**
 * The error for a claim the database refused. It never means the user did something wrong: the
 * service holds the wrong key (the owner rotated it, or it belongs to another database) or the
 * two clocks disagree by more than a claim's lifetime allows.
 */
export function claimRefused(rejection: ClaimRejection, origin: ClaimKeySource['origin']): ConfigurationError {
  if (rejection.kind === 'clock') {
    const side = rejection.skewSeconds > 0 ? 'ahead of' : 'behind';
    return new ConfigurationError(
      `The database refused this service's identity claim: its clock is ${Math.abs(rejection.skewSeconds)} s ${side} this host's, and a claim lives ${CLAIM_LIFETIME_SECONDS} s; synchronise the clocks (or check the claim key from ${origin}).`,
    );
  }
  return new ConfigurationError(
    `The database refused this service's identity claim: the claim key from ${origin} is not the database's (was it rotated?); set ${CLAIM_KEY_ENV} to the key the owner prints with: ${READ_CLAIM_KEY_SQL};`,
  );
}

/**
 * Reads the claim key from the database. Works for the owner role only.
 *
 * @throws ConfigurationError when the role may not read it, or the migrations that create it have not run
 * @throws TransientError when the connection failed
 */
async function loadClaimKey(em: EntityManager): Promise<Buffer> {
  let rows: { key: Buffer }[];
  try {
    rows = await em.fork().getConnection().execute<{ key: Buffer }[]>('select key from public.vault_db_claim_key where id = 1');
  } catch (error) {
    const state = sqlStateOf(error);
    if (state === '42501') throw new ConfigurationError(NO_READ_RIGHT);
    if (state === '42P01') throw new ConfigurationError('The database has no public.vault_db_claim_key table: run the migrations (npm run db:migrate, or runMigrations()).');
    throw classifyFailure(error);
  }
  const row = rows[0];
  if (!row) throw new ConfigurationError('public.vault_db_claim_key holds no key: as the owner, run select public.vault_db_rotate_claim_key();');
  return parseClaimKey(row.key, 'public.vault_db_claim_key.key');
}

/**
 * The claim key of one `SyncService`: from the option, else from `VAULT_DB_CLAIM_KEY`, else read
 * from the database on first use. A key read from the database is read again after the database
 * refused a claim made with it (the owner rotated it); a configured key is never replaced.
 */
export class ClaimKeySource {
  private key: Promise<Buffer> | null;
  /** Where the key came from, for error messages. */
  readonly origin: 'options.claimKey' | typeof CLAIM_KEY_ENV | 'the database';

  /**
   * @param em the service's EntityManager, used only when the key must come from the database
   * @param option the `claimKey` option, if given
   * @param env where to look for `VAULT_DB_CLAIM_KEY`
   * @throws ConfigurationError when the option or the variable is malformed
   */
  constructor(
    private readonly em: EntityManager,
    option: Uint8Array | string | undefined,
    env: NodeJS.ProcessEnv,
  ) {
    const fromEnv = env[CLAIM_KEY_ENV];
    if (option !== undefined) {
      this.origin = 'options.claimKey';
      this.key = Promise.resolve(parseClaimKey(option, 'options.claimKey'));
    } else if (fromEnv !== undefined && fromEnv !== '') {
      this.origin = CLAIM_KEY_ENV;
      this.key = Promise.resolve(parseClaimKey(fromEnv, CLAIM_KEY_ENV));
    } else {
      this.origin = 'the database';
      this.key = null;
    }
  }

  /** The key; concurrent first calls share one read, and a failed read is retried by the next call. */
  get(): Promise<Buffer> {
    if (this.key) return this.key;
    const loading = loadClaimKey(this.em);
    this.key = loading;
    loading.catch(() => {
      if (this.key === loading) this.key = null;
    });
    return loading;
  }

  /**
   * The database refused a claim made with the key. A key read from the database is forgotten, so
   * the next {@link get} reads it again; returns whether that happens.
   */
  refused(): boolean {
    if (this.origin !== 'the database') return false;
    this.key = null;
    return true;
  }
}

/**
 * The claim key, as 64 hex digits: the value for `VAULT_DB_CLAIM_KEY`. Run it on an ORM that
 * connects as the owner role (the one that runs the migrations).
 *
 * @example
 * ```ts
 * const ownerOrm = await MikroORM.init(createConfig(process.env.DIRECT_URL!));
 * console.log(await readClaimKey(ownerOrm.em)); // store it in the app's secret store
 * ```
 * @throws ConfigurationError when the role may not read the key (it is not the owner)
 */
export async function readClaimKey(em: EntityManager): Promise<string> {
  return (await loadClaimKey(em)).toString('hex');
}

/**
 * Replaces the claim key with 32 fresh random bytes, as the owner, and returns it as 64 hex
 * digits. From then on the database refuses claims made with the old key, so every service that
 * has the key configured fails with `ConfigurationError` until it gets the new one: rotate while
 * deploying the new `VAULT_DB_CLAIM_KEY`. (Services connected as the owner re-read it by themselves.)
 *
 * @throws ConfigurationError when the role may not change the key (it is not the owner)
 */
export async function rotateClaimKey(em: EntityManager): Promise<string> {
  try {
    await em.fork().getConnection().execute('select public.vault_db_rotate_claim_key()');
  } catch (error) {
    if (sqlStateOf(error) === '42501') throw new ConfigurationError('Only the owner role may rotate the claim key: connect as the role that runs the migrations.');
    throw classifyFailure(error);
  }
  return readClaimKey(em);
}
