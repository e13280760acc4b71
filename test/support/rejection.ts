/**
 * The error a promise rejects with, for tests that check more of it than `rejects.toThrow` can
 * (its class, its fields and its whole message at once).
 */

/** Awaits `promise` and returns what it rejected with; fails the test if it resolved instead. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}
