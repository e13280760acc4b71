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
 * @module
 */
import type { Observation, ReplicaEntry } from './device.js';
import type { AckFact, Ledger, WriteFact } from './ledger.js';

/** The invariants by name, in the order of the summary. */
export const INVARIANTS = ['convergence', 'no lost update', 'gap-free feed', 'idempotency', 'isolation', 'typed errors'] as const;
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
export function checkInvariants(input: { ledger: Ledger; devices: readonly DeviceView[]; server: readonly ServerRecord[] }): Violation[] {
  const { ledger, devices, server } = input;
  return [
    ...convergence(devices, server),
    ...noLostUpdate(ledger, server),
    ...gapFreeFeed(devices, server),
    ...idempotency(ledger),
    ...isolation(devices),
    ...typedErrors(ledger),
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

/** 1. Every replica equals its vault on the server, tombstones included. */
export function convergence(devices: readonly DeviceView[], server: readonly ServerRecord[]): Violation[] {
  const out: Violation[] = [];
  const byUser = serverByUser(server);
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
      if (!records.has(recordId)) out.push({ invariant: 'convergence', message: `${device.name} holds ${show(device.userId, recordId)} v${local.version}, which the server does not have` });
    }
  }
  return out;
}

/**
 * 2. Per record, versions acknowledged 1..n, each to one write only, and the final state is the
 * last acknowledged write. A version nobody heard acknowledged is accepted only when a push that
 * failed with a transient error carried a write of exactly that version (its commit may have
 * succeeded while the answer was lost): that is the one write whose outcome the client can't know.
 */
export function noLostUpdate(ledger: Ledger, server: readonly ServerRecord[]): Violation[] {
  const out: Violation[] = [];
  const acks = new Map<string, AckFact[]>();
  for (const ack of ledger.acks) {
    if (ack.version !== ack.baseVersion + 1) {
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
  const finals = new Map(server.map((r) => [key(r.user, r.recordId), r]));
  const keys = new Set([...acks.keys(), ...finals.keys()]);
  for (const k of keys) {
    const record = finals.get(k);
    const list = acks.get(k) ?? [];
    const maybe = uncertain.get(k) ?? [];
    const [user, recordId] = k.split('\u0000') as [string, string];
    const name = show(user, recordId);
    // Keyed by content: two devices deleting the same version both get "applied" (a tombstone is
    // a tombstone, and judge.ts counts the second as already applied), which loses nothing.
    const byVersion = new Map<number, Map<string, AckFact>>();
    for (const ack of list) {
      const writes = byVersion.get(ack.version) ?? new Map<string, AckFact>();
      if (!writes.has(ack.content)) writes.set(ack.content, ack);
      byVersion.set(ack.version, writes);
    }
    for (const [version, writes] of byVersion) {
      if (writes.size > 1) {
        const ids = [...writes.values()].map((w) => w.writeId).join(', ');
        out.push({ invariant: 'no lost update', message: `${name}: v${version} was acknowledged to ${writes.size} writes of different content (${ids}): one overwrote the other` });
      }
    }
    if (!record) {
      out.push({ invariant: 'no lost update', message: `${name}: acknowledged up to v${Math.max(...byVersion.keys())}, but the server has no such record` });
      continue;
    }
    const top = Math.max(0, ...byVersion.keys());
    if (top > record.version) {
      out.push({ invariant: 'no lost update', message: `${name}: v${top} was acknowledged, but the server holds v${record.version}` });
    }
    for (let v = 1; v <= record.version; v++) {
      if (!byVersion.has(v) && !maybe.some((w) => w.version === v)) {
        out.push({ invariant: 'no lost update', message: `${name}: v${v} exists (the server is at v${record.version}) but was never acknowledged, and no failed push carried it` });
      }
    }
    const last = byVersion.get(record.version);
    const candidates = last ? [...last.values()] : maybe.filter((w) => w.version === record.version);
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
 * 3. Per device: no (record, version) pulled twice, no version lower than one already seen, and
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
        const id = `${o.recordId}@${o.version}`;
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

/** 4. Re-sent pushes whose response was lost. */
export function idempotency(ledger: Ledger): Violation[] {
  const out: Violation[] = [];
  for (const push of ledger.lostPushes) {
    for (const change of push.changes) {
      const name = `${push.device}: re-sent ${show(push.user, change.recordId)} (base v${change.baseVersion}${push.atomic ? ', atomic' : ''})`;
      const { hidden, retry } = change;
      if (hidden.kind === 'applied') {
        if (retry.kind === 'applied' && retry.version !== hidden.version) {
          out.push({ invariant: 'idempotency', message: `${name}: the lost response acknowledged v${hidden.version}, the re-send v${retry.version}: applied twice` });
        } else if (retry.kind === 'conflict' && (retry.serverVersion === null || retry.serverVersion <= hidden.version)) {
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
