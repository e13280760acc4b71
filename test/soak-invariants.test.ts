/**
 * The soak's purge-aware invariants judge histories, so they are tested on histories written by
 * hand: the right one passes, and each defect of issue #12.1 (a version restarted after a purge,
 * a stale device's push applied, a resync without a purge, a tombstone no purge removed) is named.
 * No server: the soak runs (test/soak-minimums.test.ts) show the same checks on real ones.
 */
import { describe, expect, test } from 'vitest';
import type { ReplicaEntry } from '../soak/device.js';
import { checkInvariants, convergence, noLostUpdate, purgeSafety, type DeviceView, type ServerRecord } from '../soak/invariants.js';
import { Ledger, type StaleWakeFact } from '../soak/ledger.js';
import { TOMBSTONE } from '../soak/payload.js';
import type { PurgedRecord } from '../soak/purges.js';

const USER = 'alice';

function ack(ledger: Ledger, recordId: string, baseVersion: number, version: number, content: string): void {
  ledger.ack({ user: USER, recordId, baseVersion, version, writeId: `w-${recordId}-${version}-${content}`, content, device: 'u0.d0' }, 'response');
}

const purgedX: PurgedRecord[] = [{ user: USER, recordId: 'x', version: 2, deleted: true, seq: 2 }];

/** x created (v1), deleted (v2), the tombstone purged. */
function purgedHistory(): Ledger {
  const ledger = new Ledger();
  ack(ledger, 'x', 0, 1, 'first');
  ack(ledger, 'x', 1, 2, TOMBSTONE);
  return ledger;
}

describe('no lost update across purges', () => {
  test('a record id that lives again above its purged version passes', () => {
    const ledger = purgedHistory();
    ack(ledger, 'x', 0, 3, 'second');
    const server: ServerRecord[] = [{ user: USER, recordId: 'x', version: 3, deleted: false, content: 'second' }];
    expect(noLostUpdate(ledger, server, purgedX)).toEqual([]);
    expect(purgeSafety(ledger, server, purgedX)).toEqual([]);
  });

  test('a version restarted after the purge is named twice: one version for two writes, and a reused version', () => {
    const ledger = purgedHistory();
    ack(ledger, 'x', 0, 1, 'second');
    const server: ServerRecord[] = [{ user: USER, recordId: 'x', version: 1, deleted: false, content: 'second' }];
    expect(noLostUpdate(ledger, server, purgedX).map((v) => v.message)).toContainEqual(expect.stringMatching(/v1 was acknowledged to 2 writes of different content/));
    expect(purgeSafety(ledger, server, purgedX).map((v) => v.message)).toEqual([expect.stringMatching(/is at v1, but v2 of it was purged: a version was reused/)]);
  });

  test('without the purge log, the same purged history is a lost record', () => {
    expect(noLostUpdate(purgedHistory(), [], []).map((v) => v.message)).toEqual([expect.stringMatching(/the server has no such record and never purged one/)]);
  });
});

describe('purge safety', () => {
  const wake: StaleWakeFact = { device: 'u0.d3', user: USER, cursorSeq: 1, purgedSeq: 2, withCursor: true, purgedIds: 1, carriedPurged: 1, outcome: 'resync', detail: '' };

  test('a stale wake refused for a resync passes; one applied or answered with conflicts only is named', () => {
    const ledger = new Ledger();
    ledger.staleWakes.push(wake, { ...wake, outcome: 'applied', detail: 'applied x@v2' }, { ...wake, withCursor: false, outcome: 'conflicts only', detail: 'conflicts x (gone)' });
    const messages = purgeSafety(ledger, [], purgedX).map((v) => v.message);
    expect(messages).toEqual([expect.stringMatching(/with that cursor was not refused: applied x@v2/), expect.stringMatching(/without a cursor was not refused: conflicts x/)]);
  });

  test('a ResyncRequiredError in a vault that never purged anything is named', () => {
    const ledger = new Ledger();
    ledger.resyncs.push({ device: 'u0.d1', user: USER, call: 'pull', reason: 'deletions this cursor had not seen were purged', cursor: 'c' });
    expect(purgeSafety(ledger, [], [])).toHaveLength(1);
    expect(purgeSafety(ledger, [], purgedX)).toEqual([]);
  });
});

describe('convergence with purged tombstones', () => {
  const device = (replica: [string, ReplicaEntry][]): DeviceView => ({ name: 'u0.d0', userId: USER, userIndex: 0, replica: new Map(replica), observations: [] });

  test('a device may keep a tombstone the server purged, at exactly the purged version', () => {
    expect(convergence([device([['x', { version: 2, deleted: true, content: TOMBSTONE }]])], [], purgedX)).toEqual([]);
  });

  test('a tombstone no purge removed, or a live record, is named', () => {
    const violations = convergence([device([['x', { version: 1, deleted: true, content: TOMBSTONE }], ['y', { version: 4, deleted: false, content: 'c' }]])], [], purgedX);
    expect(violations.map((v) => v.message)).toEqual([expect.stringMatching(/holds alice\/x v1 \(deleted\)/), expect.stringMatching(/holds alice\/y v4,/)]);
  });

  test('checkInvariants hands the purge log to every check: the purged history passes whole, and fails without it', () => {
    const devices = [device([['x', { version: 2, deleted: true, content: TOMBSTONE }]])];
    expect(checkInvariants({ ledger: purgedHistory(), devices, server: [], purged: purgedX })).toEqual([]);
    expect(new Set(checkInvariants({ ledger: purgedHistory(), devices, server: [] }).map((v) => v.invariant))).toEqual(new Set(['convergence', 'no lost update']));
  });
});
