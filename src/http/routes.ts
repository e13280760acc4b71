/**
 * The API's routes as data: method, path, whether a token is needed, and the schemas of the
 * request and of the success response. The app registers exactly these (app.ts) and the OpenAPI
 * document lists exactly these (openapi.ts), so a route can't exist in one and not the other.
 *
 * @module
 */
import {
  beginRotationBody,
  commitRotationBody,
  configSchema,
  enableVaultBody,
  healthSchema,
  pullQuery,
  pullResultSchema,
  pushBody,
  pushResultSchema,
  rewrapBody,
  rotateBody,
  stageRotationBody,
  vaultInfoSchema,
} from './schemas.js';
import { z } from 'zod/v4';

/** Names of the routes, one per handler in app.ts. */
export type RouteName =
  | 'health'
  | 'config'
  | 'openapi'
  | 'getVault'
  | 'enableVault'
  | 'disableVault'
  | 'rewrapKey'
  | 'rotateKey'
  | 'beginKeyRotation'
  | 'stageKeyRotation'
  | 'commitKeyRotation'
  | 'abortKeyRotation'
  | 'push'
  | 'pull';

/** One route of the API. */
export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'delete';
  /** Hono's spelling (`:param`); openapi.ts rewrites it to `{param}`. */
  path: string;
  summary: string;
  /** True when a Bearer token is required. */
  auth: boolean;
  body?: z.ZodType;
  query?: z.ZodObject;
  status: 200 | 201;
  response: z.ZodType;
}

/** Every route, by name. */
export const ROUTES: Record<RouteName, RouteSpec> = {
  health: { method: 'get', path: '/v1/health', summary: 'Liveness, and readiness: the database answers', auth: false, status: 200, response: healthSchema },
  config: { method: 'get', path: '/v1/config', summary: 'The published limits (SyncLimits plus maxBodyBytes)', auth: false, status: 200, response: configSchema },
  openapi: { method: 'get', path: '/v1/openapi.json', summary: 'This document', auth: false, status: 200, response: z.object({}).passthrough() },
  getVault: { method: 'get', path: '/v1/vault', summary: "The caller's vault: its key envelope and versions", auth: true, status: 200, response: vaultInfoSchema },
  enableVault: { method: 'post', path: '/v1/vault', summary: 'Enable the vault with its key envelope', auth: true, body: enableVaultBody, status: 201, response: vaultInfoSchema },
  disableVault: {
    method: 'delete',
    path: '/v1/vault',
    summary: 'Disable the vault, deleting every record',
    auth: true,
    status: 200,
    response: z.object({ deletedRecords: z.number().int() }),
  },
  rewrapKey: { method: 'put', path: '/v1/vault/envelope', summary: 'Rewrap: a new envelope for the same vault key', auth: true, body: rewrapBody, status: 200, response: vaultInfoSchema },
  rotateKey: { method: 'post', path: '/v1/vault/rotate', summary: 'Rotate the vault key in one call, re-encrypting every live record', auth: true, body: rotateBody, status: 200, response: vaultInfoSchema },
  beginKeyRotation: {
    method: 'post',
    path: '/v1/vault/rotations',
    summary: 'Begin a staged key rotation',
    auth: true,
    body: beginRotationBody,
    status: 201,
    response: z.object({ rotationId: z.string() }),
  },
  stageKeyRotation: {
    method: 'post',
    path: '/v1/vault/rotations/:rotationId/records',
    summary: 'Stage a chunk of re-encrypted records',
    auth: true,
    body: stageRotationBody,
    status: 200,
    response: z.object({ staged: z.number().int() }),
  },
  commitKeyRotation: {
    method: 'post',
    path: '/v1/vault/rotations/:rotationId/commit',
    summary: 'Commit a staged rotation with the new envelope',
    auth: true,
    body: commitRotationBody,
    status: 200,
    response: vaultInfoSchema,
  },
  abortKeyRotation: {
    method: 'delete',
    path: '/v1/vault/rotations/:rotationId',
    summary: 'Abort a staged rotation',
    auth: true,
    status: 200,
    response: z.object({ aborted: z.boolean() }),
  },
  push: { method: 'post', path: '/v1/vault/push', summary: 'Push changes; conflicts are data in the 200', auth: true, body: pushBody, status: 200, response: pushResultSchema },
  pull: { method: 'get', path: '/v1/vault/changes', summary: 'Pull changes after a cursor (none or empty: a full sync)', auth: true, query: pullQuery, status: 200, response: pullResultSchema },
};
