/**
 * `npm run load:http`: the soak's devices, but over HTTP. Each device pushes and pulls through
 * `fetch` against the real API (`createSyncApp` under `@hono/node-server`, dev-mode tokens), on a
 * scratch database of `DATABASE_URL`'s server or the embedded PostgreSQL. Then every device pulls
 * to the end and the soak's invariants (convergence, no lost update, gap-free feed, idempotency,
 * isolation, typed errors) are checked against the rows. Prints p50/p99 latency per call,
 * throughput and errors; exits 1 on any violation.
 *
 *   npm run load:http -- --users 8 --devices 3 --ops 60
 *
 * Bounded: users x devices x ops steps, no time-based loop. Server and clients share this one
 * process (and its CPU), so the numbers are a floor, not a capacity figure.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { serve } from '@hono/node-server';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { pino } from 'pino';
import { adminQuery, withDatabase } from '../scripts/database-admin.js';
import { createConfig } from '../src/config.js';
import { pgConnectionConfig } from '../src/connection-options.js';
import { resolveDatabaseUrl } from '../src/database-url.js';
import { TransientError } from '../src/errors.js';
import { createSyncApp } from '../src/http/app.js';
import { fromBase64Url, toBase64Url, type RecordStateJson } from '../src/http/codec.js';
import { createDevAuth } from '../src/http/dev-auth.js';
import { runMigrations } from '../src/migrate.js';
import { SyncService } from '../src/sync/sync-service.js';
import type { PullInput, PullResult, PushInput, PushResult, RecordState } from '../src/sync/types.js';
import { Device } from './device.js';
import { checkInvariants, type ServerRecord } from './invariants.js';
import { Ledger } from './ledger.js';
import { contentOf } from './payload.js';
import { deriveSeed, Rng } from './random.js';

const { values: args } = parseArgs({
  options: { users: { type: 'string', default: '6' }, devices: { type: 'string', default: '3' }, ops: { type: 'string', default: '40' }, seed: { type: 'string' } },
});
const USERS = Number(args.users);
const DEVICES = Number(args.devices);
const OPS = Number(args.ops);
const SEED = args.seed !== undefined ? Number(args.seed) : randomBytes(4).readUInt32BE(0);

/** Per-call latencies and statuses, as the clients saw them. */
class Stats {
  readonly ms = new Map<string, number[]>();
  readonly statuses = new Map<number, number>();
  record(call: string, ms: number, status: number): void {
    (this.ms.get(call) ?? this.ms.set(call, []).get(call)!).push(ms);
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function recordState(json: RecordStateJson): RecordState {
  return { ...json, ciphertext: json.ciphertext === null ? null : fromBase64Url(json.ciphertext), updatedAt: new Date(json.updatedAt) };
}

/** `push` and `pull` of SyncService, over HTTP with one user's token. */
class HttpSync {
  constructor(
    private readonly base: string,
    private readonly tokens: Map<string, string>,
    private readonly stats: Stats,
  ) {}

  private async call(name: string, userId: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const started = performance.now();
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.tokens.get(userId)}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as { error?: { code: string; message: string } };
    this.stats.record(name, performance.now() - started, res.status);
    if (res.status === 503 || res.status === 429) throw new TransientError(json.error?.message ?? 'retry', { status: res.status, code: json.error?.code });
    if (!res.ok) throw Object.assign(new Error(`${res.status} ${json.error?.code}: ${json.error?.message}`), { code: json.error?.code });
    return json;
  }

  async push(userId: string, input: PushInput): Promise<PushResult> {
    const body = {
      ...input,
      changes: input.changes.map((c) => (c.deleted ? c : { recordId: c.recordId, baseVersion: c.baseVersion, ciphertext: toBase64Url(c.ciphertext) })),
    };
    const json = (await this.call('push', userId, 'POST', '/v1/vault/push', body)) as { applied: PushResult['applied']; conflicts: { recordId: string; reason: PushResult['conflicts'][number]['reason']; server: RecordStateJson | null }[]; cursor: string };
    return { applied: json.applied, cursor: json.cursor, conflicts: json.conflicts.map((c) => ({ ...c, server: c.server === null ? null : recordState(c.server) })) };
  }

  async pull(userId: string, input: PullInput = {}): Promise<PullResult> {
    const query = new URLSearchParams();
    if (input.cursor) query.set('cursor', input.cursor);
    if (input.limit !== undefined) query.set('limit', String(input.limit));
    if (input.maxBytes !== undefined) query.set('maxBytes', String(input.maxBytes));
    const json = (await this.call('pull', userId, 'GET', `/v1/vault/changes?${query}`)) as { changes: RecordStateJson[]; cursor: string; hasMore: boolean };
    return { changes: json.changes.map(recordState), cursor: json.cursor, hasMore: json.hasMore };
  }
}

async function readServerState(url: string): Promise<ServerRecord[]> {
  const client = new pg.Client(pgConnectionConfig(url));
  await client.connect();
  try {
    const { rows } = await client.query<{ user_id: string; record_id: string; version: number; deleted: boolean; ciphertext: Buffer }>(
      'select v.user_id, r.record_id, r.version, r.deleted, r.ciphertext from records r join vaults v on v.id = r.vault_id order by v.user_id, r.record_id',
    );
    return rows.map((r) => ({ user: r.user_id, recordId: r.record_id, version: r.version, deleted: r.deleted, content: contentOf(r.ciphertext, r.deleted) }));
  } finally {
    await client.end();
  }
}

async function main(): Promise<number> {
  const target = await resolveDatabaseUrl();
  const dbName = `vault_db_http_load_${randomBytes(4).toString('hex')}`;
  await adminQuery(target.url, `create database "${dbName}"`);
  const url = withDatabase(target.url, dbName);
  let orm: MikroORM | undefined;
  let server: ReturnType<typeof serve> | undefined;
  try {
    await runMigrations({ url, log: () => {} });
    orm = await MikroORM.init(createConfig(url, { pool: { min: 0, max: 10 } }));
    const dev = await createDevAuth();
    const app = createSyncApp({ sync: new SyncService(orm.em), auth: dev.auth, logger: pino({ level: 'silent' }), limits: { rateLimit: false } });
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise((r) => server!.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const stats = new Stats();
    const tokens = new Map<string, string>();
    const ledger = new Ledger();
    const http = new HttpSync(base, tokens, stats);
    const devices: Device[] = [];
    const recordIds = Array.from({ length: 40 }, (_, i) => `bm-${String(i).padStart(4, '0')}`);
    const options = { recordIds, maxBatch: 8, pullRate: 0.25, atomicRate: 0.2, lostResponseRate: 0.1, deleteRate: 0.2, maxMergeRounds: 4, maxAttempts: 200, thinkMs: 0 };
    for (let u = 0; u < USERS; u++) {
      const name = `load_${u}_${SEED}`;
      const userId = `dev:${name}`;
      tokens.set(userId, await dev.tokenFor(name));
      const enabled = await fetch(`${base}/v1/vault`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.get(userId)}` },
        body: JSON.stringify({ wrappedKey: toBase64Url(randomBytes(60)), salt: toBase64Url(randomBytes(16)), kdfParams: { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 } }),
      });
      if (enabled.status !== 201) throw new Error(`enable failed: ${enabled.status}`);
      for (let d = 0; d < DEVICES; d++) devices.push(new Device(http, userId, u, d, new Rng(deriveSeed(SEED, `device ${u}.${d}`)), ledger, options));
    }

    const started = performance.now();
    await Promise.all(devices.map(async (device) => {
      for (let i = 0; i < OPS; i++) await device.step();
    }));
    const workMs = performance.now() - started;
    const requests = [...stats.statuses.values()].reduce((a, b) => a + b, 0);
    for (const device of devices) await device.pullToEnd();
    const violations = checkInvariants({ ledger, devices, server: await readServerState(url) });

    console.log(`http load: ${USERS} users x ${DEVICES} devices x ${OPS} steps (seed ${SEED}), ${(workMs / 1000).toFixed(1)} s of work`);
    for (const [call, list] of stats.ms) {
      const sorted = [...list].sort((a, b) => a - b);
      console.log(`  ${call.padEnd(5)} ${String(sorted.length).padStart(6)} requests  p50 ${percentile(sorted, 50).toFixed(1)} ms  p99 ${percentile(sorted, 99).toFixed(1)} ms`);
    }
    console.log(`  throughput ${(requests / (workMs / 1000)).toFixed(0)} requests/s during the work (the final pulls excluded)`);
    console.log(`  statuses ${[...stats.statuses].map(([s, n]) => `${s}: ${n}`).join(', ')}; changes applied ${ledger.counters.applied}, conflicts ${ledger.counters.conflicts}`);
    console.log(violations.length === 0 ? '  invariants: all hold (convergence, no lost update, gap-free feed, idempotency, isolation, typed errors)' : `  VIOLATIONS:\n${violations.map((v) => `    ${v.invariant}: ${v.message}`).join('\n')}`);
    return violations.length === 0 ? 0 : 1;
  } finally {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    await orm?.close(true);
    await adminQuery(target.url, `drop database if exists "${dbName}" with (force)`);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(2);
  },
);
