/**
 * `npm start` (after building the page) and `npm run serve`: the sync API and the bookmark page as
 * a standalone process under `@hono/node-server`.
 *
 * Reads PORT, HOST, DATABASE_URL, DIRECT_URL, AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE,
 * AUTH_AUTHORIZED_PARTIES and CORS_ORIGINS (see serve-config.ts); a bad value stops it with one
 * line. With no DATABASE_URL it starts the embedded PostgreSQL. It migrates (through DIRECT_URL
 * when set), checks that it has the claim key (VAULT_DB_CLAIM_KEY, or the owner's right to read
 * it), serves, and on SIGINT or SIGTERM stops accepting, finishes in-flight requests,
 * closes the pool and leaves the embedded server. Without AUTH_JWKS_URL it runs in local dev mode.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import { MikroORM } from '@mikro-orm/postgresql';
import { pino } from 'pino';
import { createConfig } from '../config.js';
import { checkDatabaseReachable, redactUrl, resolveMigrationUrl, type DatabaseTarget } from '../database-url.js';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../embedded-postgres.js';
import { VaultDbError } from '../errors.js';
import { runMigrations } from '../migrate.js';
import { CLAIM_KEY_ENV, readClaimKey } from '../sync/claim-key.js';
import { SyncService } from '../sync/sync-service.js';
import { createSyncApp } from './app.js';
import { createJwtAuth } from './auth.js';
import { createDevAuth, DEV_MODE_WARNING } from './dev-auth.js';
import { readServeConfig } from './serve-config.js';

/** The built page (`npm run build:web`), beside the sources or beside the built package; null when not built. */
function webDir(): string | null {
  for (const relative of ['../../dist/web', '../web']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${dir}/index.html`)) return dir;
  }
  return null;
}

async function main(): Promise<void> {
  const config = readServeConfig();
  let embedded: EmbeddedPostgresHandle | undefined;
  let app: DatabaseTarget;
  const fromEnv = process.env.DATABASE_URL?.trim();
  if (fromEnv) {
    app = { url: fromEnv, source: 'DATABASE_URL' };
  } else {
    embedded = await startEmbeddedPostgres();
    app = { url: embedded.url, source: 'embedded' };
  }
  const migration = process.env.DIRECT_URL?.trim() ? await resolveMigrationUrl() : app;
  await checkDatabaseReachable(app);
  const migrated = await runMigrations({ url: migration.url, log: () => {} });
  const orm = await MikroORM.init(createConfig(app.url));
  // Without VAULT_DB_CLAIM_KEY the service reads the key from the database, which only the owner
  // may. As the application role every request would then fail: refuse to start instead, in one line.
  if (!process.env[CLAIM_KEY_ENV]?.trim()) await readClaimKey(orm.em.fork()).catch(async (error: unknown) => {
    await orm.close(true);
    throw error;
  });
  const logger = pino({ level: process.env.LOG_LEVEL?.trim() || 'info' });

  const dev = config.auth.mode === 'dev' ? await createDevAuth() : undefined;
  const auth =
    config.auth.mode === 'jwks'
      ? createJwtAuth({
          jwks: config.auth.jwksUrl,
          issuer: config.auth.issuer,
          audience: config.auth.audience,
          ...(config.auth.authorizedParties ? { authorizedParties: config.auth.authorizedParties } : {}),
        })
      : dev!.auth;
  const api = createSyncApp({
    sync: new SyncService(orm.em),
    auth,
    logger,
    corsOrigins: config.corsOrigins,
    ready: async () => {
      await orm.em.getConnection().execute('select 1');
    },
  });
  if (dev) api.route('/', dev.routes);
  const web = webDir();
  if (web) {
    api.get('/', serveStatic({ root: web, path: 'index.html' }));
    api.get('/assets/*', serveStatic({ root: web }));
  }

  const server = serve({ fetch: api.fetch, port: config.port, hostname: config.host }, (info) => {
    const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
    if (dev) console.log(`\n*** ${DEV_MODE_WARNING} ***\n*** Get a token: curl -X POST http://${host}:${info.port}/dev/token -d '{"user":"alice"}' ***\n`);
    console.log(`database: ${app.source === 'embedded' ? 'embedded PostgreSQL' : app.source} ${redactUrl(app.url)}`);
    console.log(`migrations: ${migrated.applied.length} applied just now, ${migrated.previouslyApplied.length} before${migration.url === app.url ? '' : ` (through ${migration.source})`}`);
    console.log(`listening on http://${host}:${info.port} (API under /v1, OpenAPI at /v1/openapi.json${web ? ', the bookmark page at /' : '; no page: run npm run build:web'})`);
    if (web) console.log(`open http://${host}:${info.port}/ in two browser windows: each is a device of the user you name. Ctrl-C stops.`);
  });

  let stoppingSince = 0;
  const stop = (signal: string): void => {
    if (stoppingSince) {
      // One Ctrl-C reaches this process up to three times: the terminal signals the whole process
      // group, and npm and tsx each relay it once more. Only a second signal after a pause is a
      // person asking to stop without waiting.
      if (Date.now() - stoppingSince < 1_000) return;
      console.error(`${signal} again: exiting without waiting.`);
      process.exit(1);
    }
    stoppingSince = Date.now();
    console.log(`${signal}: finishing in-flight requests, then stopping.`);
    // close() stops accepting and waits for open requests; idle keep-alive sockets would hold it open.
    server.close(() => {
      void (async () => {
        await orm.close(true);
        await embedded?.stop();
        console.log('stopped.');
        process.exit(0);
      })();
    });
    if ('closeIdleConnections' in server) server.closeIdleConnections();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(error instanceof VaultDbError ? `vault-db serve: ${error.message}` : error);
  process.exit(1);
});
