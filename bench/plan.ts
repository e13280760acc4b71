/**
 * The sizes and repetition counts of a bench run. Two plans: the default one (bounded to a few
 * minutes on 2 cores) and `--quick` for CI (under 2 minutes). The targets of issue 5 are about
 * pushes of 1,000 changes, a 10,000-record full pull and 1,000 vs 100,000-record vaults, so the
 * quick plan keeps those sizes wherever they are cheap and shrinks only the long-running parts.
 *
 * @module
 */

/** Everything that sizes a run. */
export interface BenchPlan {
  mode: 'default' | 'quick';
  /** Records already in the vault that pushes go into (the "vault of 10,000 records"). */
  vaultSize: number;
  /** Bytes of ciphertext per record (random, like AES-GCM output). */
  ciphertextBytes: number;
  /** Rounds of untimed pushes of every kind before anything is timed (JIT warm-up). */
  warmUpRounds: number;
  /** Timed repetitions of each push scenario, after one untimed counting run. */
  pushReps: number;
  /** Records of the first-import scenario, pushed in batches of `importBatch`. */
  importRecords: number;
  importBatch: number;
  /** Timed repetitions of the import (it is the longest scenario). */
  importReps: number;
  /** Records of the full-pull vault, and the page size a new device asks for. */
  fullPullRecords: number;
  fullPullLimit: number;
  fullPullReps: number;
  /** Sizes of the two incremental-pull vaults, and how many changes wait after the cursor. */
  incrementalSmall: number;
  incrementalLarge: number;
  incrementalChanges: number;
  incrementalReps: number;
  /** The size of each parallel user's vault, and how many 100-change pushes each sends. */
  parallelVaultSize: number;
  parallelPushesPerUser: number;
  parallelReps: number;
  /** Batch sizes of the push-time-vs-batch-size sweep. */
  sweepSizes: number[];
  sweepReps: number;
  /** Child processes per cold-start variant. */
  coldStartReps: number;
  /** Users pushing at once in the throughput scenarios (one scenario per count). */
  parallelUserCounts: number[];
  /** One-way delays, ms, the latency scenario's TCP proxy adds (same region, across regions). */
  latencyDelaysMs: number[];
  /** Timed typical syncs per delay and implementation, the vault they go into, and how many changes of other devices wait. */
  latencyReps: number;
  latencyVaultSize: number;
  latencyWaiting: number;
  /** Pushes of 10 changes a memory child process serves, and how many of them warm it up first. */
  memoryPushes: number;
  memoryWarmUp: number;
  /** Per-lever figures (`bench/levers.ts`): rounds over all variants, timed pushes of each kind per child, and their vault. */
  leverRounds: number;
  leverReps: number;
  leverVaultSize: number;
}

/** The default plan: every size the issue names, bounded to a few minutes on 2 cores. */
export const DEFAULT_PLAN: Readonly<BenchPlan> = Object.freeze({
  mode: 'default',
  vaultSize: 10_000,
  ciphertextBytes: 256,
  warmUpRounds: 4,
  pushReps: 5,
  importRecords: 50_000,
  importBatch: 1000,
  importReps: 2,
  fullPullRecords: 10_000,
  fullPullLimit: 1000,
  fullPullReps: 9,
  incrementalSmall: 1000,
  incrementalLarge: 100_000,
  incrementalChanges: 100,
  incrementalReps: 31,
  parallelVaultSize: 1000,
  parallelPushesPerUser: 10,
  parallelReps: 2,
  sweepSizes: [10, 100, 250, 500, 1000],
  sweepReps: 4,
  coldStartReps: 3,
  parallelUserCounts: [16, 64],
  latencyDelaysMs: [1, 5],
  latencyReps: 21,
  latencyVaultSize: 1000,
  latencyWaiting: 10,
  memoryPushes: 10_000,
  memoryWarmUp: 1000,
  leverRounds: 3,
  leverReps: 5,
  leverVaultSize: 2000,
});

/**
 * The CI plan: the same scenarios with fewer repetitions, a 2,000-record push vault, a 5,000-record
 * import, a 20,000-record "large" vault and 2 pushes per parallel user. Numbers from it are
 * indicative only; it exists to prove the bench runs and the implementations agree.
 */
export const QUICK_PLAN: Readonly<BenchPlan> = Object.freeze({
  ...DEFAULT_PLAN,
  mode: 'quick',
  vaultSize: 2000,
  warmUpRounds: 2,
  pushReps: 3,
  importRecords: 5000,
  importReps: 1,
  fullPullReps: 3,
  incrementalLarge: 20_000,
  incrementalReps: 9,
  parallelReps: 1,
  sweepReps: 3,
  coldStartReps: 1,
  parallelVaultSize: 200,
  parallelPushesPerUser: 1,
  latencyReps: 3,
  memoryPushes: 100,
  memoryWarmUp: 30,
  leverRounds: 1,
  leverReps: 1,
});
