/**
 * The wire form of the library's values: bytes as base64url without padding, dates as ISO 8601
 * strings. Decoding is strict (only the canonical spelling of some bytes is accepted), so a
 * string that a lenient decoder would silently reinterpret is a validation error instead.
 *
 * @module
 */
import type { PullResult, PushResult, RecordState, VaultInfo } from '../sync/types.js';

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Encodes bytes as base64url without padding. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Decodes canonical base64url without padding; null when `text` is anything else (padding, `+`,
 * `/`, whitespace, an impossible length, or non-zero trailing bits that a re-encode would drop).
 */
export function fromBase64Url(text: string): Buffer | null {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return null;
  const bytes = Buffer.from(text, 'base64url');
  // Node's decoder ignores trailing bits; comparing the re-encoding catches every non-canonical form.
  return bytes.toString('base64url') === text ? bytes : null;
}

/** A record state as JSON. */
export interface RecordStateJson {
  recordId: string;
  version: number;
  deleted: boolean;
  ciphertext: string | null;
  updatedAt: string;
}

/** {@link VaultInfo} as JSON. */
export interface VaultInfoJson extends Omit<VaultInfo, 'wrappedKey' | 'salt' | 'enabledAt' | 'updatedAt'> {
  wrappedKey: string;
  salt: string;
  enabledAt: string;
  updatedAt: string;
}

/** Encodes a {@link RecordState}. */
export function recordStateJson(state: RecordState): RecordStateJson {
  return {
    recordId: state.recordId,
    version: state.version,
    deleted: state.deleted,
    ciphertext: state.ciphertext === null ? null : toBase64Url(state.ciphertext),
    updatedAt: state.updatedAt.toISOString(),
  };
}

/** Encodes a {@link VaultInfo}. */
export function vaultInfoJson(info: VaultInfo): VaultInfoJson {
  return {
    userId: info.userId,
    wrappedKey: toBase64Url(info.wrappedKey),
    salt: toBase64Url(info.salt),
    kdfParams: info.kdfParams,
    deviceFingerprint: info.deviceFingerprint,
    version: info.version,
    keyVersion: info.keyVersion,
    enabledAt: info.enabledAt.toISOString(),
    updatedAt: info.updatedAt.toISOString(),
  };
}

/** Encodes a {@link PushResult}. */
export function pushResultJson(result: PushResult): unknown {
  return {
    applied: result.applied,
    conflicts: result.conflicts.map((c) => ({ recordId: c.recordId, reason: c.reason, server: c.server === null ? null : recordStateJson(c.server) })),
    cursor: result.cursor,
  };
}

/** Encodes a {@link PullResult}. */
export function pullResultJson(result: PullResult): unknown {
  return { changes: result.changes.map(recordStateJson), cursor: result.cursor, hasMore: result.hasMore };
}
