/**
 * Every error the API answers with, as `{ error: { code, message, violations? } }`, and the status
 * each of the package's errors maps to. The package's own `code` is passed through unchanged; the
 * codes only HTTP has (`unauthorized`, `rate_limited`, `not_found`, `internal`) are added here.
 *
 * @module
 */
import {
  LimitExceededError,
  ResyncRequiredError,
  RotationNotFoundError,
  StaleKeyError,
  TransientError,
  ValidationError,
  VaultAlreadyEnabledError,
  VaultDbError,
  VaultNotFoundError,
  VersionConflictError,
  type RuleViolation,
} from '../errors.js';

/** Codes that only the HTTP layer produces, beside the package's `VaultDbErrorCode`s. */
export type HttpOnlyErrorCode = 'unauthorized' | 'rate_limited' | 'not_found' | 'method_not_allowed' | 'internal';

/** The body of every error response. */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    violations?: readonly RuleViolation[];
    /** For `version_conflict` and `stale_key`: the version the server holds now. */
    currentVersion?: number;
  };
}

/** An error the HTTP layer raises itself (authentication, routing, request shape). */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 405 | 413 | 429 | 500 | 503,
    readonly code: string,
    message: string,
    readonly violations?: readonly RuleViolation[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A response's status, body and extra headers. */
export interface ErrorResponse {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
}

/** The status of each package error that a route can raise. */
function statusOf(error: VaultDbError): number {
  if (error instanceof ValidationError) return 400;
  if (error instanceof VaultNotFoundError || error instanceof RotationNotFoundError) return 404;
  if (error instanceof VaultAlreadyEnabledError || error instanceof VersionConflictError || error instanceof StaleKeyError) return 409;
  if (error instanceof ResyncRequiredError) return 410;
  if (error instanceof LimitExceededError) return 413;
  if (error instanceof TransientError) return 503;
  // DatabaseError, ConfigurationError and the rest: the server's fault, not the caller's.
  return 500;
}

/**
 * Maps anything a handler threw to a response. Unknown errors and server-side package errors
 * become a bare 500 `internal`: their messages are for the log, not for the caller.
 */
export function toErrorResponse(error: unknown): ErrorResponse {
  if (error instanceof HttpError) {
    const body: ErrorBody = { error: { code: error.code, message: error.message } };
    if (error.violations) body.error.violations = error.violations;
    return { status: error.status, body, headers: error.headers };
  }
  if (error instanceof VaultDbError) {
    const status = statusOf(error);
    if (status === 500) return internal();
    const body: ErrorBody = { error: { code: error.code, message: error.message } };
    if (error instanceof ValidationError || error instanceof LimitExceededError) body.error.violations = error.violations;
    if (error instanceof VersionConflictError) body.error.currentVersion = error.currentVersion;
    if (error instanceof StaleKeyError) body.error.currentVersion = error.currentKeyVersion;
    const headers: Record<string, string> = {};
    if (error instanceof TransientError) headers['Retry-After'] = String(Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000)));
    return { status, body, headers };
  }
  return internal();
}

function internal(): ErrorResponse {
  return { status: 500, body: { error: { code: 'internal', message: 'Internal server error; the request id is in the X-Request-Id header.' } }, headers: {} };
}
