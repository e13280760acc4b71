/**
 * Compute restarts mid-run (`--restarts`, issue #8): PostgreSQL itself goes down with a fast
 * shutdown and comes back on the same data dir and port while devices push, as Neon does when it
 * restarts a compute. The devices' ORM is never re-created: its pool has to find the server again.
 *
 * Two ways to restart:
 * - **A private embedded server** (no `DATABASE_URL`): the soak starts one of its own, in a fresh
 *   data dir under `.data/`, on a free port, so no other process's server is ever restarted; a
 *   restart is the package's own handle stopping it (SIGINT, PostgreSQL's fast shutdown, which
 *   waits for nothing) and starting it again on the same data dir and port.
 * - **A command** (`--restart-command`, with `DATABASE_URL`): run by the shell for each restart,
 *   e.g. `scripts/neon-stack.sh restart` (`pg_ctl -m fast restart` behind PgBouncer).
 *
 * A {@link CallTracker} around the service marks the calls in flight when a restart begins or ends,
 * and records how each of them ended: the promise is a success or a `TransientError`.
 *
 * @module
 */
import { exec } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../src/embedded-postgres.js';
import { ResyncRequiredError, TransientError } from '../src/errors.js';
import type { SyncService } from '../src/sync/sync-service.js';
import { sleep, type Rng } from './random.js';
import { BackgroundLoop } from './background-loop.js';

/** Something that restarts the server under test. */
export interface ServerRestarter {
  /** Shuts the server down (fast) and starts it again; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Stops what it started, if anything; removes its data. */
  close(): Promise<void>;
}

/** A port nothing listens on right now (the kernel's choice for an ephemeral bind). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A private embedded PostgreSQL that only this soak run uses, so restarting it harms nobody. */
export class EmbeddedRestarter implements ServerRestarter {
  private constructor(
    private handle: EmbeddedPostgresHandle,
    private readonly dataDir: string,
    private readonly port: number,
  ) {}

  /** The server's URL (the `postgres` database, as the superuser). */
  get url(): string {
    return this.handle.url;
  }

  /** Creates the data dir and starts the server. */
  static async start(): Promise<EmbeddedRestarter> {
    // Inside the checkout's ignored .data/, as the embedded server's own data dir is.
    const parent = path.join(process.cwd(), '.data');
    mkdirSync(parent, { recursive: true });
    const dataDir = mkdtempSync(path.join(parent, 'soak-restarts-'));
    const port = await freePort();
    try {
      return new EmbeddedRestarter(await startEmbeddedPostgres({ dataDir, port }), dataDir, port);
    } catch (error) {
      rmSync(dataDir, { recursive: true, force: true });
      throw error;
    }
  }

  async restart(): Promise<void> {
    // The last (only) user leaving stops it with SIGINT, the fast shutdown, and waits for it to end.
    await this.handle.stop();
    this.handle = await startEmbeddedPostgres({ dataDir: this.dataDir, port: this.port });
  }

  async close(): Promise<void> {
    const moved = this.handle.dataDir;
    await this.handle.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
    // As root the server may keep its data where its OS user can reach it (see layout.ts).
    if (moved !== this.dataDir) rmSync(moved, { recursive: true, force: true });
  }
}

/** Runs a shell command for each restart, e.g. `scripts/neon-stack.sh restart`. */
export class CommandRestarter implements ServerRestarter {
  constructor(private readonly command: string) {}

  restart(): Promise<void> {
    return new Promise((resolve, reject) => {
      exec(this.command, { timeout: 120_000 }, (error, _stdout, stderr) => {
        if (error) reject(new Error(`the restart command failed (${this.command}): ${error.message.trim()}${stderr ? `\n${stderr.trim()}` : ''}`));
        else resolve();
      });
    });
  }

  async close(): Promise<void> {}
}

/** How the calls in flight at a restart ended. */
export interface RestartHits {
  /** Calls in flight when a restart began or ended. */
  calls: number;
  succeeded: number;
  transient: number;
  /** Refused for a resync (a purge passed the cursor): a typed answer that wrote nothing. */
  resync: number;
  /** Anything else: a broken promise. */
  other: string[];
}

/**
 * Wraps a service so that its `push`, `pull` and `purgeTombstones` calls are known while they run.
 * The devices get the wrapped service and never know.
 */
export class CallTracker {
  private readonly live = new Set<{ hit: boolean }>();
  readonly hits: RestartHits = { calls: 0, succeeded: 0, transient: 0, resync: 0, other: [] };

  /** The service, with its calls tracked. */
  wrap(sync: SyncService): SyncService {
    const tracked = new Set<PropertyKey>(['push', 'pull', 'purgeTombstones']);
    return new Proxy(sync, {
      get: (target, property, receiver) => {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function' || !tracked.has(property)) return value;
        return (...args: unknown[]) => this.track(String(property), () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
      },
    });
  }

  /** Marks every call running now as hit by a restart; returns how many run. */
  markInFlight(): number {
    for (const call of this.live) {
      if (!call.hit) {
        call.hit = true;
        this.hits.calls++;
      }
    }
    return this.live.size;
  }

  private async track<T>(name: string, run: () => Promise<T>): Promise<T> {
    const call = { hit: false };
    this.live.add(call);
    try {
      const result = await run();
      if (call.hit) this.hits.succeeded++;
      return result;
    } catch (error) {
      if (call.hit) {
        if (error instanceof TransientError) this.hits.transient++;
        else if (error instanceof ResyncRequiredError) this.hits.resync++;
        else this.hits.other.push(`${name}: ${(error as { constructor?: { name?: string } })?.constructor?.name ?? typeof error}: ${(error as Error)?.message ?? String(error)}`);
      }
      throw error;
    } finally {
      this.live.delete(call);
    }
  }
}

/** How often the server restarts. */
export interface RestartPlan {
  /** Pause between the end of one restart and the start of the next, in ms. */
  everyMs: [number, number];
  /** No restart begins this close to the end of the work, so the pool is seen to recover. */
  quietEndMs: number;
}

/** Three or four restarts in a 30-second run, each after the devices had time to get going again. */
export const DEFAULT_RESTART_PLAN: RestartPlan = { everyMs: [4000, 7000], quietEndMs: 4000 };

/** One restart, as it happened. */
export interface RestartFact {
  /** Calls in flight when it began. */
  inFlight: number;
  /** How long the server was away, in ms. */
  downMs: number;
  /** Calls answered (pushes and pulls) before it began, and once the server was back. */
  answeredBefore: number;
  answeredAfter: number;
}

/** Restarts the server at random moments until {@link RestartLoop.stop}. */
export class RestartLoop extends BackgroundLoop {
  readonly restarts: RestartFact[] = [];
  /** A restart that failed (the server did not come back): the run is broken. */
  failure: unknown = null;

  constructor(
    private readonly restarter: ServerRestarter,
    private readonly tracker: CallTracker,
    private readonly rng: Rng,
    /** When the work ends (epoch ms). */
    private readonly workEnds: number,
    /** Calls answered so far. */
    private readonly answered: () => number,
    private readonly plan: RestartPlan = DEFAULT_RESTART_PLAN,
  ) {
    super();
  }

  protected async run(): Promise<void> {
    while (this.running) {
      const pause = this.rng.int(...this.plan.everyMs);
      for (const until = Date.now() + pause; this.running && Date.now() < until; ) await sleep(50);
      if (!this.running || Date.now() > this.workEnds - this.plan.quietEndMs) continue;
      const inFlight = this.tracker.markInFlight();
      const answeredBefore = this.answered();
      const began = Date.now();
      try {
        await this.restarter.restart();
      } catch (error) {
        this.failure = error;
        this.running = false;
        return;
      }
      // Calls that started while it was down were in flight during the restart too.
      this.tracker.markInFlight();
      this.restarts.push({ inFlight, downMs: Date.now() - began, answeredBefore, answeredAfter: this.answered() });
    }
  }
}
