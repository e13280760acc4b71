/**
 * CLIENT-SIDE ONLY: what a device does before anything reaches the server. It derives a wrapping
 * key from the passphrase (PBKDF2 with HMAC-SHA-256, via WebCrypto), wraps a random AES-256-GCM vault key
 * with it, and encrypts each bookmark with the vault key. The server package never imports this.
 */
import { webcrypto } from 'node:crypto';
import type { KdfParams } from '../src/index.js';

const subtle = webcrypto.subtle;
const IV_BYTES = 12;

/** The KDF parameters this example uses: the ticket's PBKDF2 (HMAC-SHA-256) at the minimum the server accepts. */
export const exampleKdf: KdfParams = { algorithm: 'PBKDF2', iterations: 600_000, saltLength: 16 };

async function wrappingKey(passphrase: string, salt: Uint8Array, kdf: KdfParams): Promise<webcrypto.CryptoKey> {
  // 'PBKDF2-SHA256' is the deprecated spelling of the same KDF, which older vaults may hold.
  if (kdf.algorithm !== 'PBKDF2' && kdf.algorithm !== 'PBKDF2-SHA256') throw new Error('this example derives keys with PBKDF2 only');
  const base = await subtle.importKey('raw', new TextEncoder().encode(passphrase), 'PBKDF2', false, ['deriveKey']);
  return subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations: kdf.iterations }, base, { name: 'AES-GCM', length: 256 }, false, ['wrapKey', 'unwrapKey']);
}

/** Makes a new vault key and its envelope (what `enableVault` stores). */
export async function createEnvelope(passphrase: string, kdf: KdfParams = exampleKdf): Promise<{ vaultKey: webcrypto.CryptoKey; wrappedKey: Uint8Array; salt: Uint8Array; kdfParams: KdfParams }> {
  const salt = webcrypto.getRandomValues(new Uint8Array(kdf.saltLength));
  const vaultKey = await subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
  const iv = webcrypto.getRandomValues(new Uint8Array(IV_BYTES));
  const wrapped = new Uint8Array(await subtle.wrapKey('raw', vaultKey, await wrappingKey(passphrase, salt, kdf), { name: 'AES-GCM', iv }));
  return { vaultKey, wrappedKey: concat(iv, wrapped), salt, kdfParams: kdf };
}

/** Unwraps the vault key on another device from the envelope the server returned. */
export async function openEnvelope(passphrase: string, envelope: { wrappedKey: Uint8Array; salt: Uint8Array; kdfParams: KdfParams }): Promise<webcrypto.CryptoKey> {
  const iv = envelope.wrappedKey.subarray(0, IV_BYTES);
  const body = envelope.wrappedKey.subarray(IV_BYTES);
  return subtle.unwrapKey('raw', body, await wrappingKey(passphrase, envelope.salt, envelope.kdfParams), { name: 'AES-GCM', iv }, { name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
}

/** A bookmark as the user sees it. */
export interface Bookmark {
  url: string;
  title: string;
  tags: string[];
}

/** Encrypts a bookmark: a fresh random IV, then AES-GCM. */
export async function encryptBookmark(vaultKey: webcrypto.CryptoKey, bookmark: Bookmark): Promise<Uint8Array> {
  const iv = webcrypto.getRandomValues(new Uint8Array(IV_BYTES));
  const body = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv }, vaultKey, new TextEncoder().encode(JSON.stringify(bookmark))));
  return concat(iv, body);
}

/** Decrypts a bookmark; throws if the ciphertext was tampered with. */
export async function decryptBookmark(vaultKey: webcrypto.CryptoKey, ciphertext: Uint8Array): Promise<Bookmark> {
  const plain = await subtle.decrypt({ name: 'AES-GCM', iv: ciphertext.subarray(0, IV_BYTES) }, vaultKey, ciphertext.subarray(IV_BYTES));
  return JSON.parse(new TextDecoder().decode(plain)) as Bookmark;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
