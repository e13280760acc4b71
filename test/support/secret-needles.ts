/**
 * Secrets that can be searched for in text: distinctive bytes, and the forms in which a message
 * or log line could carry them (hex as in bytea literals, base64, base64url, raw bytes, and slices
 * of each, so a truncated echo is caught too). Same forms as test/security/no-secrets-in-errors.
 */
import { randomBytes } from 'node:crypto';

/** Bytes no text could contain by chance: a marker, then random bytes. */
export function secret(label: string, size: number): Buffer {
  const head = Buffer.from(`SECRET-${label}-`, 'latin1');
  return Buffer.concat([head, randomBytes(Math.max(0, size - head.length))]).subarray(0, size);
}

/** The text forms of `bytes` that would betray it, keyed by a name for the failure message. */
export function needlesOf(name: string, bytes: Uint8Array): Record<string, string> {
  const b = Buffer.from(bytes);
  const mid = b.subarray(Math.floor(b.length / 2) - 6, Math.floor(b.length / 2) + 6);
  const start = b.subarray(0, 12);
  const end = b.subarray(b.length - 12);
  return {
    [`${name} (hex)`]: b.toString('hex'),
    [`${name} (start, hex)`]: start.toString('hex'),
    [`${name} (end, hex)`]: end.toString('hex'),
    [`${name} (middle, hex)`]: mid.toString('hex'),
    [`${name} (middle, HEX)`]: mid.toString('hex').toUpperCase(),
    [`${name} (base64)`]: b.toString('base64'),
    [`${name} (base64url)`]: b.toString('base64url'),
    [`${name} (middle, base64)`]: mid.toString('base64').slice(0, 12),
    [`${name} (raw, latin1)`]: b.subarray(0, 12).toString('latin1'),
    [`${name} (Buffer.toJSON)`]: Array.from(mid).join(','),
  };
}

/** Every (needle, line) pair where a needle shows in one of `lines`; [] when all are clean. */
export function findNeedles(lines: readonly string[], needles: Record<string, string>): string[] {
  return lines.flatMap((line) => Object.entries(needles).filter(([, n]) => n.length > 0 && line.includes(n)).map(([what]) => `${what}: ${line.slice(0, 300)}`));
}
