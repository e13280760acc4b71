/**
 * Connections that die mid-call, on purpose. Two kinds:
 *
 * - **Terminated backends**: from a connection of its own, `pg_terminate_backend` on a backend of
 *   the application's pool (found by its `application_name`) while it is inside a transaction.
 * - **Cut sockets**: the {@link TcpProxy} between the ORM and PostgreSQL closes whichever
 *   connection carries the N-th byte from now, in either direction.
 *
 * The soak run mixes both in at random moments ({@link FaultInjector}); the fault tests use the
 * helpers to hit chosen points of a push.
 *
 * @module
 */
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { sleep, type Rng } from './random.js';
import type { CutDirection, TcpProxy } from './tcp-proxy.js';

/** One backend of the application, as `pg_stat_activity` shows it. */
export interface AppBackend {
  pid: number;
  state: string | null;
  waitEventType: string | null;
  /** The statement running, or the last one when idle. */
  query: string;
  inTransaction: boolean;
}

/**
 * The backends of the current database whose `application_name` is `appName`, other than the
 * asking connection itself.
 */
export async function appBackends(db: Pick<pg.ClientBase, 'query'>, appName: string): Promise<AppBackend[]> {
  const { rows } = await db.query<{ pid: number; state: string | null; wait_event_type: string | null; query: string; in_tx: boolean }>(
    `select pid, state, wait_event_type, query, xact_start is not null as in_tx
       from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and application_name = $1`,
    [appName],
  );
  return rows.map((r) => ({ pid: r.pid, state: r.state, waitEventType: r.wait_event_type, query: r.query, inTransaction: r.in_tx }));
}

/** `pg_terminate_backend(pid)`; true when the signal was sent. */
export async function terminateBackend(db: Pick<pg.ClientBase, 'query'>, pid: number): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>('select pg_terminate_backend($1) as ok', [pid]);
  return rows[0]?.ok === true;
}

/**
 * Polls until a backend of `appName` matches `predicate` (e.g. "waits on a lock"), then returns it.
 * @throws Error after `timeoutMs`
 */
export async function waitForBackend(db: Pick<pg.ClientBase, 'query'>, appName: string, predicate: (b: AppBackend) => boolean, timeoutMs = 10_000): Promise<AppBackend> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await appBackends(db, appName)).find(predicate);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no backend of ${appName} matched within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** How often the soak run injects faults. */
export interface FaultPlan {
  /** Pause between two kills, in ms: a random value in [min, max]. */
  killEveryMs: [number, number];
  /** Pause between two cuts, in ms. */
  cutEveryMs: [number, number];
  /** A cut happens after a random number of bytes in [0, maxCutBytes]. */
  maxCutBytes: number;
}

/** The plan the soak run uses with `--faults`. */
// Each fault costs the victim a reconnect (50 to 150 ms on a busy 2-core machine), so about five
// of each kind a second keeps a run making progress while hitting a good share of its calls.
export const DEFAULT_FAULT_PLAN: FaultPlan = { killEveryMs: [50, 350], cutEveryMs: [50, 350], maxCutBytes: 4000 };

/** What the injector did. */
export interface FaultStats {
  /** Backends terminated while inside a transaction. */
  terminated: number;
  /** Sockets cut by the proxy. */
  cut: number;
  /** Failures of the injector's own queries (it keeps going). */
  injectorErrors: number;
}

/**
 * Runs the two fault loops of a soak run until {@link FaultInjector.stop}. Kills go to a random
 * backend of `appName` that is inside a transaction, so they land in the middle of a call.
 */
export class FaultInjector {
  private running = false;
  private loops: Promise<void>[] = [];
  private admin: pg.Client | null = null;
  readonly stats: FaultStats = { terminated: 0, cut: 0, injectorErrors: 0 };
  /** The last failure of the injector's own queries, if any. */
  lastError: unknown = null;

  constructor(
    /** A direct URL (not through the proxy) of the database under test. */
    private readonly adminUrl: string,
    private readonly appName: string,
    private readonly proxy: TcpProxy | null,
    private readonly rng: Rng,
    private readonly plan: FaultPlan = DEFAULT_FAULT_PLAN,
  ) {}

  /** Starts the loops. */
  async start(): Promise<void> {
    this.admin = await this.connect();
    this.running = true;
    this.loops = [this.killLoop()];
    if (this.proxy) this.loops.push(this.cutLoop(this.proxy));
  }

  /** Stops the loops and waits for them; no fault fires after this resolves. */
  async stop(): Promise<void> {
    this.running = false;
    this.proxy?.disarm();
    await Promise.all(this.loops);
    await this.admin?.end().catch(() => {});
    this.admin = null;
  }

  /** Total faults injected. */
  get total(): number {
    return this.stats.terminated + this.stats.cut;
  }

  private async connect(): Promise<pg.Client> {
    const admin = new pg.Client({ ...pgConnectionConfig(this.adminUrl), application_name: 'soak-fault-injector' });
    admin.on('error', () => {});
    await admin.connect();
    return admin;
  }

  private async killLoop(): Promise<void> {
    while (this.running) {
      await sleep(this.rng.int(...this.plan.killEveryMs));
      if (!this.running) break;
      try {
        // A restart of the server (--restarts) ends this connection too: open a new one.
        this.admin ??= await this.connect();
        const busy = (await appBackends(this.admin, this.appName)).filter((b) => b.inTransaction);
        if (busy.length === 0) continue;
        if (await terminateBackend(this.admin, this.rng.pick(busy).pid)) this.stats.terminated++;
      } catch (error) {
        // The injector's own connection failing must not end the run; it shows in the summary.
        this.stats.injectorErrors++;
        this.lastError = error;
        await this.admin?.end().catch(() => {});
        this.admin = null;
      }
    }
  }

  private async cutLoop(proxy: TcpProxy): Promise<void> {
    while (this.running) {
      await sleep(this.rng.int(...this.plan.cutEveryMs));
      if (!this.running) break;
      const direction = this.rng.pick<CutDirection>(['up', 'down', 'any']);
      // Resolves when the cut fires (the next call carries the chosen byte) or stop() disarms it.
      if (await proxy.cutAfter(this.rng.int(0, this.plan.maxCutBytes), direction)) this.stats.cut++;
    }
  }
}
