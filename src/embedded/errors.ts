/**
 * The one error the embedded server throws on purpose: a {@link ConfigurationError} (so every
 * caller that prints configuration problems as one line prints these too) with a stable `reason`
 * that says which of the known causes it was. Each message names the cause, the fix, and where
 * the server's log is when there is one.
 *
 * @module
 */
import { ConfigurationError } from '../errors.js';

/** Why the embedded server could not be started or used. */
export type EmbeddedServerFailure =
  /** Another program listens on the port (another checkout's server, say). */
  | 'port_in_use'
  /** The data dir was made by another major version of PostgreSQL. */
  | 'data_dir_version'
  /** The data dir is damaged: PostgreSQL can't start from it. */
  | 'data_dir_damaged'
  /** The folder is not empty but isn't a PostgreSQL data dir either. */
  | 'not_a_data_dir'
  /** The data dir has no private password (made by an older vault-db with its fixed password). */
  | 'no_private_password'
  /** A server of this data dir runs but refuses the data dir's password. */
  | 'login_rejected'
  /** A PostgreSQL binary, or the package that ships them, is missing. */
  | 'binary_missing'
  /** A PostgreSQL binary exists but can't be executed. */
  | 'binary_not_executable'
  /** initdb failed. */
  | 'initdb_failed'
  /** As root: the `postgres` OS user that runs the server is missing and could not be made. */
  | 'server_user'
  /** As root: a shared folder for the server's files exists but another user could swap its contents. */
  | 'unsafe_folder'
  /** The server did not become ready, or another process's server did not finish starting or stopping, in time. */
  | 'start_timeout'
  /** PostgreSQL exited while starting, for a reason not listed above (the message quotes it). */
  | 'start_failed';

/**
 * The embedded PostgreSQL could not be started or used.
 *
 * @example
 * ```ts
 * try { await startEmbeddedPostgres(); }
 * catch (e) { if (e instanceof EmbeddedServerError && e.reason === 'port_in_use') useAnotherPort(); }
 * ```
 */
export class EmbeddedServerError extends ConfigurationError {
  constructor(
    /** Which of the known causes it was. */
    readonly reason: EmbeddedServerFailure,
    message: string,
    /** The server's log file, when there is one to read. */
    readonly logFile?: string,
    options?: { cause?: unknown },
  ) {
    super(logFile ? `${message} Server log: ${logFile}` : message, options);
  }
}
