/**
 * The promises a soak run checks at its end, judged from the devices' logs, the {@link Ledger}
 * and the server's final state (read directly from the tables):
 *
 * 1. **Convergence**: once every device has pulled, each replica equals the server's state of its vault.
 * 2. **No lost update**: per record, the acknowledged versions run 1..n with no gap and no version
 *    acknowledged to two different writes, and the server's final state is the last acknowledged write.
 * 3. **Gap-free feed**: no device pulled the same version of a record twice or saw a record's version
 *    go backwards, and each device saw (pulled, or wrote itself) the final state of every record.
 * 4. **Idempotency**: a re-sent push whose response was lost reports each change it had applied as
 *    applied at the same version, or, when the record moved on since, as a conflict with a newer
 *    server version; never a second write, never a false conflict.
 * 5. **Isolation**: no device ever received a record written by another user.
 *
 * Plus what fault injection promises: every failure reached the caller as a well-formed
 * `TransientError`, and no call failed for good.
 *
 * With purges (`--purges`), the rows each purge removed (the audit log of purges.ts) are facts
 * too: a device may keep a tombstone the server has purged, a record id lives again only above
 * every version it had before, and:
 *
 * 6. **Purge safety**: every `ResyncRequiredError` came from a purge that passed the device's
 *    cursor; a device that slept through a purge got `ResyncRequiredError` for its stale push,
 *    and nothing of it was applied; no record id is live at a version at or below one purged.
 *
 * @module
 */
import type { Observation, ReplicaEntry } from './device.js';
import type { AckFact, Ledger, WriteFact } from './ledger.js';
import { TOMBSTONE } from './payload.js';
import type { PurgedRecord } from './purges.js';

/** The invariants by name, in the order of the summary. */
export const INVARIANTS = ['convergence', 'no lost update', 'gap-free feed', 'idempotency', 'isolation', 'typed errors', 'purge safety', 'restarts'] as const;
export type InvariantName = (typeof INVARIANTS)[number];

/** One broken promise. */
export interface Violation {
  invariant: InvariantName;
  message: string;
}

/** A record as the server holds it at the end. */
export interface ServerRecord {
  user: string;
  recordId: string;
  version: number;
  deleted: boolean;
  content: string;
}

/** What the invariants need of a device. */
export interface DeviceView {
  name: string;
  userId: string;
  userIndex: number;
  replica: ReadonlyMap<string, ReplicaEntry>;
  observations: readonly Observation[];
}

/** Judges a finished run. Devices must have pulled to the end of their feeds first. */
export function checkInvariants(input: { ledger: Ledger; devices: readonly DeviceView[]; server: readonly ServerRecord[]; purged?: readonly PurgedRecord[] }): Violation[] {
  const { ledger, devices, server } = input;
  const purged = input.purged ?? [];
  return [
    ...convergence(devices, server, purged),
    ...noLostUpdate(ledger, server, purged),
    ...gapFreeFeed(devices, server),
    ...idempotency(ledger, purged),
    ...isolation(devices),
    ...typedErrors(ledger),
    ...purgeSafety(ledger, server, purged),
  ];
}

const key = (user: string, recordId: string) => `${user}\u0000${recordId}`;
const show = (user: string, recordId: string) => `${user}/${recordId}`;

function serverByUser(server: readonly ServerRecord[]): Map<string, Map<string, ServerRecord>> {
  const byUser = new Map<string, Map<string, ServerRecord>>();
  for (const record of server) {
    let records = byUser.get(record.user);
    if (!records) byUser.set(record.user, (records = new Map()));
    records.set(record.recordId, record);
  }
  return byUser;
}

/** The purged rows as `user/record@version` keys. */
function purgedKeys(purged: readonly PurgedRecord[]): Set<string> {
  return new Set(purged.map((p) => `${key(p.user, p.recordId)}@${p.version}`));
}

/**
 * 1. Every replica equals its vault on the server, tombstones included; a tombstone the server
 * has since purged (at exactly that version) may stay on a device that saw the deletion.
 */
export function convergence(devices: readonly DeviceView[], server: readonly ServerRecord[], purged: readonly PurgedRecord[] = []): Violation[] {
  const out: Violation[] = [];
  const byUser = serverByUser(server);
  const gone = purgedKeys(purged);
  for (const device of devices) {
    const records = byUser.get(device.userId) ?? new Map<string, ServerRecord>();
    for (const [recordId, record] of records) {
      const local = device.replica.get(recordId);
      if (!local) {
        out.push({ invariant: 'convergence', message: `${device.name} lacks ${show(device.userId, recordId)} (server: v${record.version}${record.deleted ? ', deleted' : ''})` });
      } else if (local.version !== record.version || local.deleted !== record.deleted || local.content !== record.content) {
        out.push({
          invariant: 'convergence',
          message: `${device.name} holds ${show(device.userId, recordId)} at v${local.version} ${local.content}, the server at v${record.version} ${record.content}`,
        });
      }
    }
    for (const [recordId, local] of device.replica) {
      if (records.has(recordId)) continue;
      if (local.deleted && gone.has(`${key(device.userId, recordId)}@${local.version}`)) continue;
      out.push({ invariant: 'convergence', message: `${device.name} holds ${show(device.userId, recordId)} v${local.version}${local.deleted ? ' (deleted)' : ''}, which the server does not have and never purged` });
    }
  }
  return out;
}

/**
 * 2. No write lost, none overwritten. Per record id, each version was acknowledged to one write
 * only; versions run without a gap from the create that began the record's current life up to
 * its final state, which is the last acknowledged write. A version nobody heard acknowledged is
 * accepted only when a push that failed with a transient error carried a write of exactly that
 * version (its commit may have succeeded while the answer was lost): that is the one write whose
 * outcome the client can't know.
 *
 * With purges a record id has several lives: one ends when its tombstone is purged (a fact from
 * the purge log, a tombstone at that version), and a create begins the next one above the vault's
 * version floor, so a create may be acknowledged at any version above 0. Each life is checked on
 * its own, from its end down to its create, and the purged tombstone counts as one more write of
 * its version, so a version reused after a purge shows as one version given to two writes.
 */
export function noLostUpdate(ledger: Ledger, server: readonly ServerRecord[], purged: readonly PurgedRecord[] = []): Violation[] {
  const out: Violation[] = [];
  const acks = new Map<string, AckFact[]>();
  for (const ack of ledger.acks) {
    const created = ack.baseVersion === 0;
    if (created ? ack.version < 1 : ack.version !== ack.baseVersion + 1) {
      out.push({ invariant: 'no lost update', message: `${show(ack.user, ack.recordId)}: a change based on v${ack.baseVersion} was acknowledged as v${ack.version} (${ack.writeId})` });
    }
    const list = acks.get(key(ack.user, ack.recordId)) ?? [];
    list.push(ack);
    acks.set(key(ack.user, ack.recordId), list);
  }
  const uncertain = new Map<string, WriteFact[]>();
  for (const write of ledger.uncertain) {
    const list = uncertain.get(key(write.user, write.recordId)) ?? [];
    list.push(write);
    uncertain.set(key(write.user, write.recordId), list);
  }
  const ends = new Map<string, PurgedRecord[]>();
  for (const row of purged) {
    const list = ends.get(key(row.user, row.recordId)) ?? [];
    list.push(row);
    ends.set(key(row.user, row.recordId), list);
  }
  // A vault whose records never had a purged version: every create there is v1.
  const floorUsers = new Set(purged.map((p) => p.user));
  const finals = new Map(server.map((r) => [key(r.user, r.recordId), r]));
  const keys = new Set([...acks.keys(), ...finals.keys(), ...ends.keys()]);
  for (const k of keys) {
    const record = finals.get(k);
    const list = acks.get(k) ?? [];
    const maybe = uncertain.get(k) ?? [];
    const purgedRows = (ends.get(k) ?? []).slice().sort((a, b) => a.version - b.version);
    const [user, recordId] = k.split('\u0000') as [string, string];
    const name = show(user, recordId);
    // Keyed by content: two devices deleting the same version both get "applied" (a tombstone is
    // a tombstone, and judge.ts counts the second as already applied), which loses nothing.
    const byVersion = new Map<number, Map<string, { writeId: string; created: boolean }>>();
    const note = (version: number, content: string, writeId: string, created: boolean) => {
      const writes = byVersion.get(version) ?? new Map<string, { writeId: string; created: boolean }>();
      const known = writes.get(content);
      if (!known) writes.set(content, { writeId, created });
      else if (created) known.created = true;
      byVersion.set(version, writes);
    };
    for (const ack of list) note(ack.version, ack.content, ack.writeId, ack.baseVersion === 0);
    for (const row of purgedRows) {
      if (!row.deleted) out.push({ invariant: 'no lost update', message: `${name}: a purge removed v${row.version}, which was live (only tombstones may be purged)` });
      note(row.version, TOMBSTONE, `purged tombstone v${row.version}`, false);
    }
    for (const ack of list) {
      if (ack.baseVersion === 0 && ack.version !== 1 && !floorUsers.has(user)) {
        out.push({ invariant: 'no lost update', message: `${name}: a create was acknowledged as v${ack.version} in a vault that never purged anything (${ack.writeId})` });
      }
    }
    for (const [version, writes] of byVersion) {
      if (writes.size > 1) {
        const ids = [...writes.values()].map((w) => w.writeId).join(', ');
        out.push({ invariant: 'no lost update', message: `${name}: v${version} was acknowledged to ${writes.size} writes of different content (${ids}): one overwrote the other` });
      }
    }
    const lifeEnds = [...purgedRows.map((r) => r.version), ...(record ? [record.version] : [])];
    if (lifeEnds.length === 0) {
      out.push({ invariant: 'no lost update', message: `${name}: acknowledged up to v${Math.max(...byVersion.keys())}, but the server has no such record and never purged one` });
      continue;
    }
    const top = Math.max(0, ...list.map((a) => a.version));
    const last = Math.max(...lifeEnds);
    if (top > last) {
      out.push({ invariant: 'no lost update', message: `${name}: v${top} was acknowledged, but the server holds v${record?.version ?? 'none'}${purgedRows.length ? ` and purged up to v${purgedRows.at(-1)?.version}` : ''}` });
    }
    const maybeAt = (v: number) => maybe.some((w) => w.baseVersion > 0 && w.version === v);
    const maybeCreate = maybe.some((w) => w.baseVersion === 0);
    let previous = 0;
    for (const end of [...new Set(lifeEnds)].sort((a, b) => a - b)) {
      // Down from the life's end to the create that began it; every version in between written.
      for (let v = end; ; v--) {
        if (v <= previous) {
          out.push({ invariant: 'no lost update', message: `${name}: no create begins the life that ends at v${end} (above v${previous})` });
          break;
        }
        const writes = byVersion.get(v);
        if (writes && [...writes.values()].some((w) => w.created)) break;
        if (!writes && !maybeAt(v)) {
          // An uncertain create's version was chosen above the floor of its moment: it may begin the life here.
          if (maybeCreate) break;
          out.push({ invariant: 'no lost update', message: `${name}: v${v} exists (the life ends at v${end}) but was never acknowledged, and no failed push carried it` });
          break;
        }
        if (v === 1) break; // v1 was written (acknowledged or maybe) and can only be a create
      }
      previous = end;
    }
    if (!record) continue;
    const lastWrites = byVersion.get(record.version);
    const candidates = lastWrites ? [...lastWrites.entries()].map(([content, w]) => ({ content, writeId: w.writeId })) : maybe.filter((w) => w.version === record.version || (w.baseVersion === 0 && w.content === record.content));
    if (candidates.length > 0 && !candidates.some((w) => w.content === record.content)) {
      out.push({
        invariant: 'no lost update',
        message: `${name}: the server holds v${record.version} ${record.content}, but v${record.version} was written as ${candidates.map((w) => `${w.content} (${w.writeId})`).join(' or ')}`,
      });
    }
  }
  return out;
}

/**
 * 3. Per device: no (record, version) pulled twice (a full resync after a purge pulls everything
 * once more, so this is judged per resync epoch), no version lower than one already seen, and
 * the final state of every record of the vault seen through the feed or as the device's own
 * acknowledged write (conflict answers don't count: they are not the feed).
 */
export function gapFreeFeed(devices: readonly DeviceView[], server: readonly ServerRecord[]): Violation[] {
  const out: Violation[] = [];
  const byUser = serverByUser(server);
  for (const device of devices) {
    const highest = new Map<string, number>();
    const pulled = new Set<string>();
    const fed = new Map<string, Set<string>>();
    for (const o of device.observations) {
      const seen = highest.get(o.recordId) ?? 0;
      if (o.source === 'pull') {
        const id = `${o.epoch}:${o.recordId}@${o.version}`;
        if (pulled.has(id)) out.push({ invariant: 'gap-free feed', message: `${device.name} pulled ${show(device.userId, o.recordId)} v${o.version} twice (cursor ${o.cursor ?? 'null'})` });
        pulled.add(id);
        if (o.version < seen) {
          out.push({ invariant: 'gap-free feed', message: `${device.name} pulled ${show(device.userId, o.recordId)} v${o.version} after it had seen v${seen} (cursor ${o.cursor ?? 'null'}): the feed went backwards` });
        }
      }
      if (o.source !== 'conflict') {
        const states = fed.get(o.recordId) ?? new Set<string>();
        states.add(`${o.version}:${o.content}`);
        fed.set(o.recordId, states);
      }
      highest.set(o.recordId, Math.max(seen, o.version));
    }
    for (const record of byUser.get(device.userId)?.values() ?? []) {
      if (!fed.get(record.recordId)?.has(`${record.version}:${record.content}`)) {
        out.push({
          invariant: 'gap-free feed',
          message: `${device.name} never pulled (nor wrote) the final state of ${show(device.userId, record.recordId)}, v${record.version}: the feed skipped it`,
        });
      }
    }
  }
  return out;
}

/**
 * 4. Re-sent pushes whose response was lost. A re-send refused for a resync (a purge passed the
 * cursor in between) wrote nothing and is fine; so is a re-send that found the record purged
 * (no server state) when the lost response had written the tombstone that was purged.
 */
export function idempotency(ledger: Ledger, purged: readonly PurgedRecord[] = []): Violation[] {
  const out: Violation[] = [];
  const gone = purgedKeys(purged);
  for (const push of ledger.lostPushes) {
    for (const change of push.changes) {
      const name = `${push.device}: re-sent ${show(push.user, change.recordId)} (base v${change.baseVersion}${push.atomic ? ', atomic' : ''})`;
      const { hidden, retry } = change;
      if (hidden.kind === 'applied') {
        if (retry.kind === 'applied' && retry.version !== hidden.version) {
          out.push({ invariant: 'idempotency', message: `${name}: the lost response acknowledged v${hidden.version}, the re-send v${retry.version}: applied twice` });
        } else if (
          retry.kind === 'conflict' &&
          (retry.serverVersion === null || retry.serverVersion <= hidden.version) &&
          !(retry.serverVersion === null && change.content === TOMBSTONE && gone.has(`${key(push.user, change.recordId)}@${hidden.version}`))
        ) {
          out.push({
            invariant: 'idempotency',
            message: `${name}: the lost response acknowledged v${hidden.version}, the re-send got a conflict while the server still held v${retry.serverVersion ?? 'none'}: a false conflict`,
          });
        } else if (retry.kind === 'absent') {
          out.push({ invariant: 'idempotency', message: `${name}: the lost response acknowledged v${hidden.version}, the re-send's answer does not mention the record` });
        }
      } else if (hidden.kind === 'conflict' && retry.kind === 'applied') {
        out.push({ invariant: 'idempotency', message: `${name}: the lost response was a conflict, but the re-send was applied as v${retry.version}` });
      }
    }
  }
  return out;
}

/** 5. Every ciphertext a device received carries its own user's header. */
export function isolation(devices: readonly DeviceView[]): Violation[] {
  const out: Violation[] = [];
  for (const device of devices) {
    for (const o of device.observations) {
      if (o.owner === null || o.owner === device.userIndex) continue;
      out.push({
        invariant: 'isolation',
        message: `${device.name} (user ${device.userId}) received ${o.recordId} v${o.version} via ${o.source}, written by ${o.owner === -1 ? 'something that is no soak device' : `user index ${o.owner}`}`,
      });
    }
  }
  return out;
}

/** Every failure was a well-formed TransientError, no call failed for good, no answer named a stray record. */
export function typedErrors(ledger: Ledger): Violation[] {
  return [
    ...ledger.errors.map((e): Violation => ({
      invariant: 'typed errors',
      message: `${e.device} ${e.call}: ${e.problem}: ${e.constructorName}${e.code ? ` (code ${e.code})` : ''}: ${e.message}${e.causes.length ? ` <- ${e.causes.join(' <- ')}` : ''}`,
    })),
    ...ledger.givenUp.map((message): Violation => ({ invariant: 'typed errors', message })),
    ...ledger.strays.map((message): Violation => ({ invariant: 'isolation', message })),
  ];
}

/**
 * 6. What purges promise (issue #12.1). Every `ResyncRequiredError` a device got came from a
 * purge: its vault purged something, and the reason names purged deletions. Every device that
 * slept through a purge was refused with `ResyncRequiredError` when it woke (the harness had seen
 * the vault's purge horizon pass its cursor first), so nothing it pushed from its stale replica
 * was applied. And no record id is live again at a version it had before a purge.
 */
export function purgeSafety(ledger: Ledger, server: readonly ServerRecord[], purged: readonly PurgedRecord[]): Violation[] {
  const out: Violation[] = [];
  const purgedUsers = new Set(purged.map((p) => p.user));
  for (const r of ledger.resyncs) {
    if (!purgedUsers.has(r.user)) {
      out.push({ invariant: 'purge safety', message: `${r.device} ${r.call}: ResyncRequiredError (${r.reason}) in a vault that never purged anything` });
    } else if (!/purge/i.test(r.reason)) {
      out.push({ invariant: 'purge safety', message: `${r.device} ${r.call}: ResyncRequiredError for another reason than a purge: ${r.reason}` });
    }
  }
  for (const w of ledger.staleWakes) {
    if (w.outcome === 'resync' || w.outcome === 'gave up') continue;
    out.push({
      invariant: 'purge safety',
      message:
        `${w.device} slept at feed position ${w.cursorSeq}, the vault's purge horizon passed it (${w.purgedSeq}; ${w.purgedIds} record(s) purged), ` +
        `and its stale push ${w.withCursor ? 'with that cursor' : 'without a cursor'} was not refused: ${w.detail}`,
    });
  }
  const highestPurged = new Map<string, number>();
  for (const p of purged) highestPurged.set(key(p.user, p.recordId), Math.max(highestPurged.get(key(p.user, p.recordId)) ?? 0, p.version));
  for (const r of server) {
    const floor = highestPurged.get(key(r.user, r.recordId));
    if (floor !== undefined && r.version <= floor) {
      out.push({ invariant: 'purge safety', message: `${show(r.user, r.recordId)} is at v${r.version}${r.deleted ? ' (deleted)' : ''}, but v${floor} of it was purged: a version was reused` });
    }
  }
  return out;
}
