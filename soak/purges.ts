/**
 * Purges mid-run (`--purges`, issue #12.1): `purgeTombstones` removes tombstones at random moments
 * while devices push and pull, and the harness learns exactly which rows each purge removed.
 *
 * - **The purge log.** The server keeps no trace of a purged tombstone but the vault's horizon and
 *   version floor, and the invariants need the removed rows themselves (a device that saw a
 *   deletion keeps the tombstone the server no longer has; a record id starts a new life above
 *   the purged version). So the soak's scratch database gets an audit trigger of its own on
 *   `records`, installed after the migrations: every deleted row lands in `soak_purged`, written
 *   in the purging transaction itself, so a rolled-back purge leaves no entry.
 * - **The purger** calls the service's own `purgeTombstones({ olderThan: now, userId })` the way a
 *   maintenance job does: from an ORM of its own on the direct URL, as the tables' owner (so the
 *   devices' per-vault share of their pool doesn't turn purges away).
 *
 * @module
 */
import pg from 'pg';
import { pgConnectionConfig } from '../src/connection-options.js';
import { TransientError } from '../src/errors.js';
import type { SyncService } from '../src/sync/sync-service.js';
import type { Ledger } from './ledger.js';
import { sleep, type Rng } from './random.js';
import { BackgroundLoop } from './background-loop.js';

/** A row a purge removed, as the audit trigger wrote it down. */
export interface PurgedRecord {
  user: string;
  recordId: string;
  version: number;
  deleted: boolean;
  seq: number;
}

/**
 * Installs the audit trigger in the scratch database (as the tables' owner, on the direct URL).
 * `security definer`, so whatever role the devices' ORM logs in as can fire it.
 */
export async function installPurgeLog(client: Pick<pg.ClientBase, 'query'>): Promise<void> {
  await client.query(`
    create table public.soak_purged (user_id text not null, record_id text not null, version integer not null, deleted boolean not null, seq bigint not null);
    create function public.soak_log_purge() returns trigger language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
    begin
      insert into public.soak_purged select o.user_id, o.record_id, o.version, o.deleted, o.seq from old_rows o;
      return null;
    end $$;
    create trigger soak_log_purge after delete on public.records referencing old table as old_rows for each statement execute function public.soak_log_purge();
  `);
}

/** Every row purged so far, oldest first. */
export async function readPurgeLog(client: Pick<pg.ClientBase, 'query'>): Promise<PurgedRecord[]> {
  const { rows } = await client.query<{ user_id: string; record_id: string; version: number; deleted: boolean; seq: string }>(
    'select user_id, record_id, version, deleted, seq from public.soak_purged order by seq',
  );
  return rows.map((r) => ({ user: r.user_id, recordId: r.record_id, version: r.version, deleted: r.deleted, seq: Number(r.seq) }));
}

/** What a sleeping device asks the harness: has a purge removed a deletion it never saw? */
export interface PurgeProbe {
  /** The vault's purge horizon (`purged_seq`) now, and the record ids purged above `afterSeq`. */
  look(user: string, afterSeq: number): Promise<{ purgedSeq: number; purgedIds: string[] }>;
  /** A device of `user` falls asleep (true) or wakes (false): the purger favours vaults with a sleeper. */
  sleeping(user: string, asleep: boolean): void;
}

/**
 * The probe, on a small pool of the direct URL: the harness reads the vault row as the owner,
 * outside the service, so the check can't share a bug with what it checks. Its queries may fail
 * while faults or restarts hit the server; the sleeper then looks again later.
 */
export class DirectProbe implements PurgeProbe {
  private readonly pool: pg.Pool;
  private readonly asleep = new Map<string, number>();

  constructor(url: string) {
    this.pool = new pg.Pool({ ...pgConnectionConfig(url), max: 2, application_name: 'soak-probe' });
    this.pool.on('error', () => {}); // an idle connection that died (a restart): the pool drops it
  }

  async look(user: string, afterSeq: number): Promise<{ purgedSeq: number; purgedIds: string[] }> {
    const head = await this.pool.query<{ purged_seq: string }>('select purged_seq from vaults where user_id = $1', [user]);
    const purged = await this.pool.query<{ record_id: string }>('select distinct record_id from public.soak_purged where user_id = $1 and seq > $2', [user, afterSeq]);
    return { purgedSeq: Number(head.rows[0]?.purged_seq ?? 0), purgedIds: purged.rows.map((r) => r.record_id) };
  }

  sleeping(user: string, asleep: boolean): void {
    const count = (this.asleep.get(user) ?? 0) + (asleep ? 1 : -1);
    if (count > 0) this.asleep.set(user, count);
    else this.asleep.delete(user);
  }

  /** Users with a device asleep now. */
  sleepers(): string[] {
    return [...this.asleep.keys()];
  }

  /** Closes the pool. */
  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** How often the purger runs. */
export interface PurgePlan {
  /** Pause between two purges, in ms: a random value in [min, max]. */
  everyMs: [number, number];
}

/** Often enough that a 30-second run purges a dozen times, rarely enough that tombstones pile up in between. */
export const DEFAULT_PURGE_PLAN: PurgePlan = { everyMs: [600, 1800] };

/**
 * Purges one random user's tombstones (all of them, up to now) at random moments until
 * {@link Purger.stop}. A `TransientError` (a fault or a restart hit the purge) is counted and the
 * purge tried again later; any other failure is a broken promise and goes to the ledger.
 */
export class Purger extends BackgroundLoop {

  constructor(
    private readonly sync: SyncService,
    private readonly users: readonly string[],
    private readonly rng: Rng,
    private readonly ledger: Ledger,
    /** Users with a device asleep: three purges in four go to one of them, so every sleep meets a purge. */
    private readonly favoured: () => string[] = () => [],
    private readonly plan: PurgePlan = DEFAULT_PURGE_PLAN,
  ) {
    super();
  }

  protected async run(): Promise<void> {
    const c = this.ledger.counters;
    while (this.running) {
      await sleep(this.rng.int(...this.plan.everyMs));
      if (!this.running) break;
      const favoured = this.favoured();
      const user = favoured.length > 0 && this.rng.chance(0.75) ? this.rng.pick(favoured) : this.rng.pick(this.users);
      try {
        const report = await this.sync.purgeTombstones({ olderThan: new Date(), userId: user });
        c.purges++;
        c.purgedTombstones += report.purged;
        if (report.purged > 0) c.effectivePurges++;
      } catch (error) {
        if (error instanceof TransientError) {
          c.purgeTransientErrors++;
          continue;
        }
        const e = error as { constructor?: { name?: string }; code?: unknown; message?: unknown };
        this.ledger.errors.push({
          device: 'purger',
          call: 'purge',
          constructorName: e?.constructor?.name ?? typeof error,
          code: typeof e?.code === 'string' ? e.code : undefined,
          message: typeof e?.message === 'string' ? e.message : String(error),
          problem: 'purgeTombstones for one user failed with something other than a TransientError',
          causes: [],
        });
      }
    }
  }
}
