/**
 * The OpenAPI 3.1 document, assembled from the route table and the same zod schemas that
 * validate requests (zod 4's own JSON Schema output, whose dialect, 2020-12, is OpenAPI 3.1's).
 *
 * @module
 */
import { z } from 'zod/v4';
import { ROUTES, type RouteSpec } from './routes.js';
import { errorSchema } from './schemas.js';

/** Statuses each authenticated route may answer with, beside its success. */
const ERROR_STATUSES: Record<string, string> = {
  '400': 'validation_failed: malformed JSON, wrong types, bad base64url, or a rule of the library',
  '401': 'unauthorized: no token, or one that does not verify',
  '404': 'vault_not_found, rotation_not_found',
  '409': 'vault_already_enabled, version_conflict, stale_key',
  '410': 'resync_required: the cursor can not be continued; pull with no cursor',
  '413': 'limit_exceeded: a library limit, or a body over maxBodyBytes',
  '429': 'rate_limited',
  '503': 'transient: retry after Retry-After seconds',
};

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

function operation(name: string, route: RouteSpec): Record<string, unknown> {
  const errorContent = { 'application/json': { schema: jsonSchema(errorSchema, 'output') } };
  const responses: Record<string, unknown> = {
    [String(route.status)]: { description: 'Success', content: { 'application/json': { schema: jsonSchema(route.response, 'output') } } },
  };
  if (route.auth) for (const [status, description] of Object.entries(ERROR_STATUSES)) responses[status] = { description, content: errorContent };
  else if (name === 'health') responses['503'] = { description: 'The database does not answer', content: { 'application/json': { schema: jsonSchema(route.response, 'output') } } };
  const parameters: unknown[] = [...route.path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  if (route.query) {
    const query = jsonSchema(route.query, 'input') as { properties?: Record<string, unknown>; required?: string[] };
    for (const [param, schema] of Object.entries(query.properties ?? {})) {
      parameters.push({ name: param, in: 'query', required: query.required?.includes(param) ?? false, schema });
    }
  }
  return {
    operationId: name,
    summary: route.summary,
    ...(route.auth ? { security: [{ bearer: [] }] } : { security: [] }),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } } } : {}),
    responses,
  };
}

/** Builds the OpenAPI 3.1 document of every route in {@link ROUTES}. */
export function buildOpenApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [name, route] of Object.entries(ROUTES)) {
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    (paths[path] ??= {})[route.method] = operation(name, route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'vault-db sync API',
      version: '1',
      description: 'End-to-end-encrypted vault sync. Bytes are base64url without padding; dates are ISO 8601. Errors are { error: { code, message, violations? } }.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
  };
}
