/**
 * `createSyncApp`: the sync API as a Web-standard handler (`app.fetch(Request) → Response`) on
 * Hono. It mounts unchanged in a Next.js App Router route handler, under `@hono/node-server`, or
 * anywhere else that speaks `Request`/`Response`.
 *
 * Per request, in this order: a request id; the access log line (written when the response is
 * done); CORS for the configured origins; the body limit, before anything reads the body; then,
 * for `/v1/vault*`, the Bearer token and the per-user rate limit; then the route, which validates
 * its input with the zod schemas of schemas.ts and calls `SyncService` with the verified user id.
 *
 * @module
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { requestId } from 'hono/request-id';
import { rateLimiter } from 'hono-rate-limiter';
import { pino, type Logger } from 'pino';
import type { z } from 'zod/v4';
import { VaultDbError, VaultNotFoundError, type RuleViolation } from '../errors.js';
import type { SyncService } from '../sync/sync-service.js';
import type { SyncLimits } from '../sync/types.js';
import type { Authenticator } from './auth.js';
import { pullResultJson, pushResultJson, vaultInfoJson } from './codec.js';
import { HttpError, toErrorResponse } from './http-errors.js';
import { buildOpenApiDocument } from './openapi.js';
import { ROUTES, type RouteName } from './routes.js';
import { beginRotationBody, commitRotationBody, enableVaultBody, pullQuery, pushBody, rewrapBody, rotateBody, stageRotationBody } from './schemas.js';

/** HTTP-level limits; each has a default. */
export interface HttpLimits {
  /** Largest request body, in bytes, refused with 413 before it is parsed. Default {@link defaultMaxBodyBytes}. */
  maxBodyBytes?: number;
  /** Requests per user per window; `false` turns the limit off. Default 600 a minute. */
  rateLimit?: { windowMs: number; limit: number } | false;
}

/** Options of {@link createSyncApp}. */
export interface SyncAppOptions {
  /** The service every route calls. */
  sync: SyncService;
  /** Verifies Bearer tokens (see `createJwtAuth`). */
  auth: Authenticator;
  limits?: HttpLimits;
  /** Where the access and error log goes. Default: pino to stdout at `info`. */
  logger?: Logger;
  /** Origins allowed to call the API from a browser; none by default (no CORS headers at all). */
  corsOrigins?: readonly string[];
  /** Readiness: resolves when the database answers. Without it, `/v1/health` reports `database: "unchecked"`. */
  ready?: () => Promise<void>;
}

type Env = { Variables: { requestId: string; userId: string } };

/**
 * The default body limit: twice the largest legal request as JSON. The largest legal push (or
 * rotation call, whose byte limit is larger) is its ciphertext in base64url plus, per change, the
 * longest record id with every character escaped and the fixed fields.
 */
export function defaultMaxBodyBytes(limits: Readonly<SyncLimits>): number {
  const perItem = limits.maxRecordIdLength * 6 + 128;
  const push = Math.ceil((limits.maxPushBytes * 4) / 3) + limits.maxChanges * perItem;
  const rotation = Math.ceil((limits.maxRotationBytes * 4) / 3) + limits.maxRotationRecords * perItem;
  return 2 * (Math.max(push, rotation) + 4096);
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * Builds the sync API.
 *
 * @example
 * ```ts
 * const app = createSyncApp({ sync: new SyncService(orm.em), auth: createJwtAuth({ jwks: process.env.AUTH_JWKS_URL!, issuer: process.env.AUTH_ISSUER! }) });
 * export const GET = app.fetch, POST = app.fetch, PUT = app.fetch, DELETE = app.fetch; // Next.js App Router
 * ```
 */
export function createSyncApp(options: SyncAppOptions): Hono<Env> {
  const { sync, auth } = options;
  const logger = options.logger ?? pino({ level: 'info' });
  const maxBodyBytes = options.limits?.maxBodyBytes ?? defaultMaxBodyBytes(sync.limits);
  const rate = options.limits?.rateLimit ?? { windowMs: 60_000, limit: 600 };
  const openapi = buildOpenApiDocument();
  const app = new Hono<Env>();

  app.use(requestId());
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    // Path only: the query holds cursors, and headers hold the token; neither belongs in a log.
    const line = { reqId: c.get('requestId'), method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started), userId: c.get('userId') };
    if (c.res.status >= 500) logger.error(line, 'request failed');
    else logger.info(line, 'request');
  });
  const origins = options.corsOrigins ?? [];
  if (origins.length > 0) {
    app.use(
      cors({
        origin: (origin) => (origins.includes(origin) ? origin : null),
        allowMethods: ['GET', 'POST', 'PUT', 'DELETE'],
        allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
        exposeHeaders: ['X-Request-Id', 'Retry-After', 'RateLimit', 'RateLimit-Policy'],
        maxAge: 600,
      }),
    );
  }
  app.use(
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () => {
        throw new HttpError(413, 'limit_exceeded', `The request body is over ${maxBodyBytes} bytes (maxBodyBytes in GET /v1/config).`);
      },
    }),
  );

  const authenticate = async (c: Context<Env>, next: () => Promise<void>): Promise<void> => {
    const header = c.req.header('Authorization');
    const match = header === undefined ? null : BEARER.exec(header);
    if (!match?.[1]) throw new HttpError(401, 'unauthorized', 'A Bearer token is required.', undefined, { 'WWW-Authenticate': 'Bearer' });
    c.set('userId', await auth.authenticate(match[1]));
    await next();
  };
  // Hono's `/v1/vault/*` matches `/v1/vault` itself too: one registration, so each runs once.
  app.use('/v1/vault/*', authenticate);
  if (rate !== false) {
    const limiter = rateLimiter<Env>({
      windowMs: rate.windowMs,
      limit: rate.limit,
      standardHeaders: 'draft-7',
      keyGenerator: (c) => c.get('userId'),
      handler: () => {
        throw new HttpError(429, 'rate_limited', `Over ${rate.limit} requests in ${rate.windowMs} ms; retry later.`, undefined, {
          'Retry-After': String(Math.ceil(rate.windowMs / 1000)),
        });
      },
    });
    app.use('/v1/vault/*', limiter);
  }

  const handlers: Record<RouteName, (c: Context<Env>) => Promise<Response>> = {
    health: async (c) => {
      if (!options.ready) return c.json({ status: 'ok', database: 'unchecked' });
      try {
        await options.ready();
        return c.json({ status: 'ok', database: 'ok' });
      } catch {
        return c.json({ status: 'unavailable', database: 'unavailable' }, 503);
      }
    },
    config: async (c) => c.json({ ...sync.limits, maxBodyBytes }),
    openapi: async (c) => c.json(openapi),
    getVault: async (c) => {
      const userId = c.get('userId');
      const info = await sync.getVault(userId);
      if (info === null) throw new VaultNotFoundError(userId);
      return c.json(vaultInfoJson(info));
    },
    enableVault: async (c) => c.json(vaultInfoJson(await sync.enableVault(c.get('userId'), await body(c, enableVaultBody))), 201),
    disableVault: async (c) => c.json(await sync.disableVault(c.get('userId'))),
    rewrapKey: async (c) => c.json(vaultInfoJson(await sync.rewrapKey(c.get('userId'), await body(c, rewrapBody)))),
    rotateKey: async (c) => c.json(vaultInfoJson(await sync.rotateKey(c.get('userId'), await body(c, rotateBody)))),
    beginKeyRotation: async (c) => c.json(await sync.beginKeyRotation(c.get('userId'), await body(c, beginRotationBody)), 201),
    stageKeyRotation: async (c) =>
      c.json(await sync.stageKeyRotation(c.get('userId'), { ...(await body(c, stageRotationBody)), rotationId: c.req.param('rotationId') ?? '' })),
    commitKeyRotation: async (c) =>
      c.json(vaultInfoJson(await sync.commitKeyRotation(c.get('userId'), { ...(await body(c, commitRotationBody)), rotationId: c.req.param('rotationId') ?? '' }))),
    abortKeyRotation: async (c) => c.json(await sync.abortKeyRotation(c.get('userId'), { rotationId: c.req.param('rotationId') ?? '' })),
    push: async (c) => c.json(pushResultJson(await sync.push(c.get('userId'), await body(c, pushBody)))),
    pull: async (c) => {
      const query = parse(pullQuery, singleValues(c), 'query');
      const cursor = query.cursor === undefined || query.cursor === '' ? null : query.cursor;
      return c.json(pullResultJson(await sync.pull(c.get('userId'), { cursor, limit: query.limit, maxBytes: query.maxBytes })));
    },
  };
  for (const [name, route] of Object.entries(ROUTES) as [RouteName, (typeof ROUTES)[RouteName]][]) {
    app.on(route.method.toUpperCase(), route.path, handlers[name]);
  }

  app.notFound(() => {
    throw new HttpError(404, 'not_found', 'No such route; GET /v1/openapi.json lists them.');
  });
  app.onError((error, c) => {
    const response = toErrorResponse(error);
    // The package's messages are written to carry no secrets; anything else (a raw driver error)
    // might echo a parameter, so only its name and code are logged.
    const message = error instanceof VaultDbError || error instanceof HttpError ? error.message : undefined;
    if (response.status >= 500) logger.error({ reqId: c.get('requestId'), err: { name: error.name, code: (error as { code?: unknown }).code, message } }, 'handler error');
    else logger.info({ reqId: c.get('requestId'), code: response.body.error.code }, 'refused');
    for (const [name, value] of Object.entries(response.headers)) c.header(name, value);
    return c.json(response.body, response.status as 400);
  });
  return app;
}

/** Reads and validates a JSON body; malformed JSON or a shape the schema refuses is a 400. */
async function body<S extends z.ZodType>(c: Context<Env>, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'validation_failed', 'The request body is not valid JSON.', [{ path: '', rule: 'must be a JSON document' }]);
  }
  return parse(schema, value, 'body');
}

function parse<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const violations: RuleViolation[] = result.error.issues.map((issue) => {
    const v: RuleViolation = { path: issue.path.map(String).join('.'), rule: issue.message };
    const recordId = recordIdAt(value, issue.path);
    if (recordId !== undefined) v.recordId = recordId;
    return v;
  });
  throw new HttpError(400, 'validation_failed', `Invalid ${where}: ${violations.slice(0, 5).map((v) => `${v.path || '(root)'}: ${v.rule}`).join('; ')}.`, violations);
}

/** The `recordId` of the change or record an issue is about, when it is a string. */
function recordIdAt(value: unknown, path: readonly PropertyKey[]): string | undefined {
  if (path.length < 2 || typeof path[1] !== 'number') return undefined;
  const list = (value as Record<string, unknown> | null)?.[String(path[0])];
  const item = Array.isArray(list) ? (list[path[1]] as { recordId?: unknown } | undefined) : undefined;
  return typeof item?.recordId === 'string' ? item.recordId : undefined;
}

/** The query string as single values; a parameter given twice is refused rather than guessed at. */
function singleValues(c: Context<Env>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of Object.entries(c.req.queries())) {
    if (values.length !== 1) throw new HttpError(400, 'validation_failed', `Query parameter "${name}" is given ${values.length} times.`, [{ path: name, rule: 'must be given once' }]);
    out[name] = values[0]!;
  }
  return out;
}
