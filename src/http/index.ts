/**
 * `vault-db/http`: the sync API over HTTP. Kept out of the package's main entry so that
 * `import 'vault-db'` never loads Hono, jose or pino.
 *
 * @packageDocumentation
 */
export { createSyncApp, defaultMaxBodyBytes, type SyncAppOptions, type HttpLimits } from './app.js';
export { createJwtAuth, DEFAULT_JWT_ALGORITHMS, type Authenticator, type JwtAuthOptions } from './auth.js';
export { HttpError, toErrorResponse, type ErrorBody, type ErrorResponse, type HttpOnlyErrorCode } from './http-errors.js';
export { buildOpenApiDocument } from './openapi.js';
export { ROUTES, type RouteName, type RouteSpec } from './routes.js';
export { toBase64Url, fromBase64Url, type RecordStateJson, type VaultInfoJson } from './codec.js';
