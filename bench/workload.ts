/**
 * The data the scenarios work on, generated once per repetition and handed to the service and the
 * baseline alike, so both see byte-identical vaults and pushes. Pure: no database here.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type { Change } from '../src/sync/types.js';

/** A small seeded PRNG (mulberry32): record choices are reproducible from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One row to seed, as the service would have left it. */
export interface SeedRecord {
  recordId: string;
  version: number;
  deleted: boolean;
  /** Empty for a tombstone. */
  ciphertext: Buffer;
  seq: number;
}

/** A vault's records and its feed head. */
export interface VaultSeed {
  records: SeedRecord[];
  lastSeq: number;
}

/** What a device knows of one record: enough to write a valid `baseVersion`. */
interface KnownRecord {
  version: number;
  deleted: boolean;
}

/**
 * The device-side view of a vault: which records exist at which version. Change generators read
 * it to pick valid targets and update it as if every change applied.
 */
export class VaultModel {
  readonly records = new Map<string, KnownRecord>();
  private nextId = 0;

  constructor(private readonly random: () => number) {}

  /** A record id not used before in this model. */
  newId(): string {
    return `rec-${(this.nextId++).toString(36).padStart(6, '0')}`;
  }

  /** `count` distinct live records, chosen at random. */
  pickLive(count: number, exclude: ReadonlySet<string> = new Set()): string[] {
    const live = [...this.records].filter(([id, r]) => !r.deleted && !exclude.has(id)).map(([id]) => id);
    if (live.length < count) throw new Error(`the vault has ${live.length} live records; ${count} were asked for`);
    // Partial Fisher-Yates: only the first `count` slots are shuffled.
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(this.random() * (live.length - i));
      [live[i], live[j]] = [live[j] as string, live[i] as string];
    }
    return live.slice(0, count);
  }
}

/** Random bytes standing in for one encrypted bookmark. */
export function ciphertext(bytes: number): Buffer {
  return randomBytes(bytes);
}

/**
 * A vault of `count` live records at version 1, feed positions 1..count, and the model that
 * knows it.
 */
export function liveVault(count: number, bytes: number, seed: number): { seed: VaultSeed; model: VaultModel } {
  const model = new VaultModel(prng(seed));
  // One allocation for all ciphertexts: seeding 100,000 records should not cost 100,000 syscalls.
  const pool = randomBytes(count * bytes);
  const records: SeedRecord[] = [];
  for (let i = 0; i < count; i++) {
    const recordId = model.newId();
    records.push({ recordId, version: 1, deleted: false, ciphertext: pool.subarray(i * bytes, (i + 1) * bytes), seq: i + 1 });
    model.records.set(recordId, { version: 1, deleted: false });
  }
  return { seed: { records, lastSeq: count }, model };
}

/**
 * A vault of `count` records whose newest `recent` feed positions belong to records edited after
 * the rest (version 2, scattered through the vault), so a cursor at `cursorSeq` has exactly
 * `recent` changes to pull.
 */
export function vaultWithRecentEdits(count: number, recent: number, bytes: number, seed: number): { seed: VaultSeed; cursorSeq: number } {
  const { seed: vault, model } = liveVault(count, bytes, seed);
  const edited = new Set(model.pickLive(recent));
  let seq = vault.lastSeq;
  for (const record of vault.records) {
    if (!edited.has(record.recordId)) continue;
    record.version = 2;
    record.ciphertext = ciphertext(bytes);
    record.seq = ++seq;
  }
  return { seed: { records: vault.records, lastSeq: seq }, cursorSeq: vault.lastSeq };
}

/** How many of each kind of change a push holds. */
export interface ChangeMix {
  creates: number;
  updates: number;
  deletes: number;
}

/** The typical sync's mix, 40% creates, 40% updates and 20% deletes, scaled to `size` changes. */
export function typicalMix(size: number): ChangeMix {
  const creates = Math.round(size * 0.4);
  const updates = Math.round(size * 0.4);
  return { creates, updates, deletes: size - creates - updates };
}

/**
 * One push's changes against the model (creates, then updates, then deletes of distinct live
 * records), and the model moved on as if all of them applied.
 */
export function makeChanges(model: VaultModel, mix: ChangeMix, bytes: number): Change[] {
  const updated = model.pickLive(mix.updates);
  const deleted = model.pickLive(mix.deletes, new Set(updated));
  const changes: Change[] = [];
  for (let i = 0; i < mix.creates; i++) {
    const recordId = model.newId();
    changes.push({ recordId, baseVersion: 0, ciphertext: ciphertext(bytes) });
    model.records.set(recordId, { version: 1, deleted: false });
  }
  for (const recordId of updated) {
    const known = model.records.get(recordId) as KnownRecord;
    changes.push({ recordId, baseVersion: known.version, ciphertext: ciphertext(bytes) });
    model.records.set(recordId, { version: known.version + 1, deleted: false });
  }
  for (const recordId of deleted) {
    const known = model.records.get(recordId) as KnownRecord;
    changes.push({ recordId, baseVersion: known.version, deleted: true });
    model.records.set(recordId, { version: known.version + 1, deleted: true });
  }
  return changes;
}
